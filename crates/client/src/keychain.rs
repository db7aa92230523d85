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

pub fn store(url: &str, email: &str, token: &str) -> anyhow::Result<()> {
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
