//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256
//! of "{id}.{timestamp}.{body}">`, keyed with the decoded bytes of a
//! `whsec_<base64>` secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

pub use crate::config::{
    MIN_WEBHOOK_SECRET_BYTES as MIN_SECRET_BYTES, WEBHOOK_SECRET_PREFIX as SECRET_PREFIX,
};

/// A webhook secret's key bytes; `Debug` prints nothing of them.
pub struct SigningKey(SecretSlice<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

impl SigningKey {
    /// Reads `whsec_` + base64 of at least [`MIN_SECRET_BYTES`] bytes (the
    /// format `webhook_secret` is checked against); the error says what is
    /// wrong without repeating the secret.
    pub fn parse(secret: &str) -> Result<Self, &'static str> {
        crate::config::webhook_secret_bytes(secret).map(|key| Self(key.into()))
    }

    /// The `webhook-signature` value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_must_be_whsec_base64_of_24_bytes() {
        let good = format!("whsec_{}", STANDARD.encode([7u8; 24]));
        assert!(SigningKey::parse(&good).is_ok());
        let short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        assert!(SigningKey::parse(&short).is_err());
        assert!(SigningKey::parse(&STANDARD.encode([7u8; 32])).is_err());
        assert!(SigningKey::parse("whsec_not base64!").is_err());
        let shown = format!("{:?}", SigningKey::parse(&good).expect("good"));
        assert!(!shown.contains(&good[6..]), "{shown}");
    }

    #[test]
    fn signatures_have_the_v1_form_and_depend_on_every_part() {
        let key = SigningKey::parse(&format!("whsec_{}", STANDARD.encode([1u8; 32]))).expect("key");
        let sig = key.sign("msg_1", 1_700_000_000, "{}");
        let raw = STANDARD
            .decode(sig.strip_prefix("v1,").expect("v1 prefix"))
            .expect("base64");
        assert_eq!(raw.len(), 32);
        assert_ne!(sig, key.sign("msg_2", 1_700_000_000, "{}"));
        assert_ne!(sig, key.sign("msg_1", 1_700_000_001, "{}"));
        assert_ne!(sig, key.sign("msg_1", 1_700_000_000, "{ }"));
    }
}
