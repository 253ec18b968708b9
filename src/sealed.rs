//! Encryption at rest for values the hub must read back (session keys,
//! access tokens, phone numbers, signing keys): AES-256-GCM under a key
//! derived with HKDF-SHA256 from `server.secret_key`, so a database dump
//! alone reveals none of them. Each value is bound to its place (a context
//! such as `"scenes.session_key"` plus the row's id) as associated data, so
//! a sealed value copied into another row or column does not open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

use crate::keys::ServerKey;

/// Prefix of every sealed value: the format's version.
const PREFIX: &str = "v1.";
/// AES-GCM nonce length.
const NONCE_LEN: usize = 12;

/// Why a sealed value did not open.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Not a value this hub sealed (wrong prefix, bad base64, too short).
    #[error("not a sealed value")]
    Malformed,
    /// Sealed under another key or for another place, or altered.
    #[error("sealed value does not open with this key and context")]
    Forged,
}

/// Seals and opens values at rest.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    /// The sealer whose key is derived from the server key.
    pub fn new(key: &ServerKey) -> Self {
        let bytes = key.expand(b"scanlogin/seal/aes-256-gcm/v1");
        Self {
            cipher: Aes256Gcm::new(&bytes.into()),
        }
    }

    /// Encrypts `plaintext` for `context` (where it will be stored):
    /// `v1.` + base64url(nonce || ciphertext || tag).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            // AES-GCM fails only for messages of 64 GiB and more.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|r| r.len() >= NONCE_LEN + 16)
            .ok_or(SealError::Malformed)?;
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Forged)
    }

    /// [`Sealer::seal`] for text.
    pub fn seal_str(&self, context: &str, plaintext: &str) -> String {
        self.seal(context, plaintext.as_bytes())
    }

    /// [`Sealer::open`] for text.
    pub fn open_str(&self, context: &str, sealed: &str) -> Result<String, SealError> {
        String::from_utf8(self.open(context, sealed)?).map_err(|_| SealError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn sealer(k: &str) -> Sealer {
        Sealer::new(&ServerKey::from_secret(&SecretString::from(k.repeat(32))))
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let s = sealer("a");
        let a = s.seal_str("t.c:1", "session-key");
        let b = s.seal_str("t.c:1", "session-key");
        assert_ne!(a, b, "each seal has its own nonce");
        assert!(!a.contains("session-key"));
        assert_eq!(s.open_str("t.c:1", &a).unwrap(), "session-key");
    }

    #[test]
    fn wrong_key_context_or_bytes_do_not_open() {
        let s = sealer("a");
        let v = s.seal_str("t.c:1", "x");
        assert!(matches!(
            sealer("b").open("t.c:1", &v),
            Err(SealError::Forged)
        ));
        assert!(matches!(s.open("t.c:2", &v), Err(SealError::Forged)));
        let mut bad = v.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(s.open("t.c:1", &bad).is_err());
        assert!(matches!(
            s.open("t.c:1", "plain"),
            Err(SealError::Malformed)
        ));
        assert!(matches!(
            s.open("t.c:1", "v1.@@"),
            Err(SealError::Malformed)
        ));
        assert!(matches!(
            s.open("t.c:1", "v1.AAAA"),
            Err(SealError::Malformed)
        ));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;
    use secrecy::SecretString;

    proptest! {
        #[test]
        fn anything_sealed_opens_in_its_place_only(plain in prop::collection::vec(any::<u8>(), 0..200),
                                                   place in "\\PC{0,30}") {
            let s = Sealer::new(&ServerKey::from_secret(&SecretString::from("k".repeat(32))));
            let sealed = s.seal(&place, &plain);
            prop_assert_eq!(s.open(&place, &sealed).ok(), Some(plain));
            let elsewhere = format!("{place}x");
            prop_assert!(s.open(&elsewhere, &sealed).is_err());
        }

        /// Text from the database that this hub did not seal never opens.
        #[test]
        fn arbitrary_text_does_not_open(text in "\\PC{0,120}") {
            let s = Sealer::new(&ServerKey::from_secret(&SecretString::from("k".repeat(32))));
            prop_assert!(s.open("p", &text).is_err());
        }
    }
}
