//! The OS keychain (Secret Service on Linux, Keychain on macOS, Credential Manager on Windows),
//! holding one refresh token per Back Office and email — the only secret that outlives a run.
//! Calls block (D-Bus, Keychain Services): call them off the async runtime.

const SERVICE: &str = "register-sync";

/// The keychain account name for a user of a Back Office.
pub fn account(url: &str, email: &str) -> String {
    format!("{email} at {url}")
}

fn entry(url: &str, email: &str) -> anyhow::Result<keyring::Entry> {
    keyring::Entry::new(SERVICE, &account(url, email))
        .map_err(|e| anyhow::anyhow!("the OS keychain is not available: {e}"))
}

/// The largest secret Windows Credential Manager keeps (`CRED_MAX_CREDENTIAL_BLOB_SIZE`), in
/// bytes of UTF-16 as the keychain crate stores it there. Refresh tokens are a few dozen
/// characters; the limit is checked on every platform so a longer one fails here, not on Windows.
pub const MAX_SECRET_BYTES: usize = 2560;

/// The bytes `secret` takes in Windows Credential Manager.
pub fn stored_size(secret: &str) -> usize {
    secret.encode_utf16().count() * 2
}

pub fn store(url: &str, email: &str, token: &str) -> anyhow::Result<()> {
    let size = stored_size(token);
    if size > MAX_SECRET_BYTES {
        anyhow::bail!(
            "cannot save the session in the OS keychain: the token is {size} bytes, more than \
             the {MAX_SECRET_BYTES} Windows Credential Manager keeps"
        );
    }
    entry(url, email)?
        .set_password(token)
        .map_err(|e| anyhow::anyhow!("cannot save the session in the OS keychain: {e}"))
}

pub fn load(url: &str, email: &str) -> anyhow::Result<Option<String>> {
    match entry(url, email)?.get_password() {
        Ok(token) => Ok(Some(token)),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "cannot read the session from the OS keychain: {e}"
        )),
    }
}

pub fn delete(url: &str, email: &str) -> anyhow::Result<()> {
    match entry(url, email)?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(
            "cannot remove the session from the OS keychain: {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_too_big_for_windows_is_refused_everywhere_before_the_keychain_is_touched() {
        let token = "x".repeat(MAX_SECRET_BYTES / 2 + 1);
        let error = store("https://bo.example", "a@b.example", &token).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("more than the 2560 Windows Credential Manager keeps")
        );
        assert_eq!(stored_size("rsr_abc"), 14);
        assert_eq!(stored_size("é"), 2, "UTF-16 code units, not UTF-8 bytes");
    }
}
