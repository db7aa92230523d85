//! Opaque bearer tokens: 256 random bits, shown to their holder once, stored only as SHA-256.
//!
//! A stolen database therefore holds no usable token. Lookups go by digest; the digest found is
//! compared again in constant time before it is trusted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefixes tell token kinds apart in a support ticket without revealing anything.
pub const ACCESS_PREFIX: &str = "rsa_";
pub const REFRESH_PREFIX: &str = "rsr_";
pub const DEVICE_PREFIX: &str = "rsd_";

pub fn generate(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn digests_match(stored: &[u8], presented: &[u8]) -> bool {
    stored.ct_eq(presented).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_prefixed() {
        let a = generate(ACCESS_PREFIX);
        let b = generate(ACCESS_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("rsa_"));
        assert_eq!(a.len(), 4 + 43);
    }

    #[test]
    fn digest_is_stable_and_compared_exactly() {
        let t = generate(REFRESH_PREFIX);
        assert!(digests_match(&digest(&t), &digest(&t)));
        assert!(!digests_match(
            &digest(&t),
            &digest(&generate(REFRESH_PREFIX))
        ));
    }
}
