//! Secrets the hub makes and checks: random tokens, their stored hashes,
//! constant-time comparison, and values derived with an HMAC under the server
//! key (kept outside the database, so a database reader cannot forge them).

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ServerSettings;

/// A fresh random token of 32 bytes, base64url without padding (43 chars).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a token, hex: what the database keeps instead of the token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` hashes to `stored`, compared in constant time.
pub fn token_matches(token: &str, stored: &str) -> bool {
    token_hash(token).as_bytes().ct_eq(stored.as_bytes()).into()
}

/// Constant-time equality of two secrets (compares their SHA-256 digests, so
/// neither length nor content leaks through timing).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

/// The server key: HMAC key for tickets and mp tokens.
pub struct ServerKey(SecretBox<Vec<u8>>);

impl ServerKey {
    /// The configured key: `server.secret_key`, else the key file (made on
    /// first start).
    pub fn of(server: &ServerSettings) -> anyhow::Result<Self> {
        Ok(match &server.secret_key {
            Some(k) => Self::from_secret(k),
            None => Self::load_or_create(&server.secret_key_file).with_context(|| {
                format!(
                    "cannot read or create server.secret_key_file {}",
                    server.secret_key_file.display()
                )
            })?,
        })
    }

    /// From configured text (at least 32 characters).
    pub fn from_secret(secret: &SecretString) -> Self {
        Self(SecretBox::new(Box::new(
            secret.expose_secret().as_bytes().to_vec(),
        )))
    }

    /// Reads the key file, creating it with a random key (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) if text.trim().len() >= 32 => {
                return Ok(Self(SecretBox::new(Box::new(
                    text.trim().as_bytes().to_vec(),
                ))));
            }
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{}: key file holds fewer than 32 characters",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let text = hex::encode(bytes);
        write_private(path, &text)?;
        Ok(Self(SecretBox::new(Box::new(text.into_bytes()))))
    }

    /// 32 bytes for one purpose, derived with HKDF-SHA256 (RFC 5869) from
    /// the server key; `info` names the purpose, so keys for different
    /// purposes are independent.
    pub fn expand(&self, info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(b"scanlogin"), self.0.expose_secret())
            .expand(info, &mut out)
            // 32 bytes is far below HKDF-SHA256's 8160-byte limit.
            .unwrap_or_default();
        out
    }

    /// HMAC-SHA256 of the parts (each length-prefixed), base64url.
    pub fn derive(&self, parts: &[&str]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_comparisons() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert!(token_matches(&t, &token_hash(&t)));
        assert!(!token_matches("other", &token_hash(&t)));
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abcd"));
    }

    #[test]
    fn derivation_separates_parts() {
        let key = ServerKey::from_secret(&SecretString::from("k".repeat(32)));
        assert_ne!(key.derive(&["ab", "c"]), key.derive(&["a", "bc"]));
        assert_eq!(key.derive(&["x"]), key.derive(&["x"]));
    }
}
