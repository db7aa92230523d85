//! Password hashing: Argon2id with OWASP's minimum parameters (19 MiB, 2 passes, 1 lane).
//!
//! Hashing takes tens of milliseconds of CPU by design, so the async wrappers run it on the
//! blocking pool and never stall the runtime's workers.

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 1024;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP Argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// What a new password must meet; the message is shown to the person choosing it.
pub fn check_acceptable(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_LENGTH {
        return Err(format!("must be at least {MIN_LENGTH} characters"));
    }
    if password.len() > MAX_LENGTH {
        return Err(format!("must be at most {MAX_LENGTH} bytes"));
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| Error::Internal(format!("salt: {e}")))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
}

/// True when `password` matches the stored PHC string. The parameters come from the string, so
/// hashes made with older parameters keep working. The 19 MiB of working memory is this thread's
/// own, kept between checks: allocated afresh each time, the allocator held on to a block per
/// check and a burst of sign-ins grew Back Office by hundreds of megabytes.
pub fn verify(password: &str, phc: &str) -> bool {
    thread_local! {
        static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let parsed = match PasswordHash::new(phc) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash cannot be parsed");
            return false;
        }
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        tracing::error!("a stored password hash has no salt or no hash");
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let derived = (|| {
        let salt = salt.decode_b64(&mut salt_bytes).ok()?;
        let stored = Params::try_from(&parsed).ok()?;
        let params = Params::new(
            stored.m_cost(),
            stored.t_cost(),
            stored.p_cost(),
            Some(expected.len()),
        )
        .ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::default(),
        };
        let mut out = vec![0u8; expected.len()];
        MEMORY.with_borrow_mut(|memory| {
            memory.resize(params.block_count(), argon2::Block::default());
            Argon2::new(algorithm, version, params)
                .hash_password_into_with_memory(
                    password.as_bytes(),
                    salt,
                    &mut out,
                    &mut memory[..],
                )
                .ok()
        })?;
        Some(out)
    })();
    match derived {
        Some(out) => subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()).into(),
        None => {
            tracing::error!("a stored password hash has parameters that cannot be used");
            false
        }
    }
}

/// The hash of a password nobody has. Checked when the email is unknown, so that "no such user"
/// takes as long as "wrong password" and emails cannot be probed by timing.
static DECOY: LazyLock<String> =
    LazyLock::new(|| hash("decoy password nobody knows").expect("hashing a constant"));

pub async fn hash_blocking(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| Error::Internal(format!("hashing task: {e}")))?
}

/// Verifies against `phc`, or against the decoy when there is no user.
/// Threads that check passwords, and sign-ins allowed to queue for them; past that a sign-in is
/// answered 503 with Retry-After instead of piling up. Each check takes 19 MiB and tens of
/// milliseconds of CPU; on a few threads of their own (not the blocking pool's hundreds) the
/// allocator keeps at most a few of those blocks around, so a burst costs bounded memory.
const CHECKERS: usize = 4;
const QUEUED_AT_MOST: usize = 64;

type Check = Box<dyn FnOnce() + Send>;

fn checkers() -> &'static std::sync::mpsc::SyncSender<Check> {
    static QUEUE: std::sync::OnceLock<std::sync::mpsc::SyncSender<Check>> =
        std::sync::OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Check>(QUEUED_AT_MOST);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..CHECKERS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || {
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match next {
                            Ok(check) => check(),
                            Err(_) => break,
                        }
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a password-checking thread");
            }
        }
        tx
    })
}

/// Checks a password off the async workers, on the password threads.
pub async fn verify_blocking(password: String, phc: Option<String>) -> Result<bool> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let check: Check = Box::new(move || {
        let matches = match phc {
            Some(phc) => verify(&password, &phc),
            None => {
                verify(&password, &DECOY);
                false
            }
        };
        let _ = reply.send(matches);
    });
    checkers().try_send(check).map_err(|_| Error::Overloaded {
        retry_after: std::time::Duration::from_secs(1),
    })?;
    answer
        .await
        .map_err(|_| Error::Internal("the password check did not finish".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let phc = hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify("correct horse", &phc));
        assert!(!verify("correct horsE", &phc));
        assert_ne!(phc, hash("correct horse").unwrap(), "salts differ");
    }

    #[test]
    fn a_corrupt_hash_never_matches() {
        assert!(!verify("anything", "not a phc string"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_acceptable("1234567").is_err());
        assert!(check_acceptable("12345678").is_ok());
    }
}
