//! WeChat's user-data cryptography: AES-128-CBC/PKCS#7 decryption of
//! `encryptedData` and the `sha1(rawData + session_key)` signature.

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// Why decryption failed (all are client errors).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecryptError {
    #[error("{0} is not valid base64")]
    Base64(&'static str),
    #[error("{0} must decode to 16 bytes")]
    Length(&'static str),
    #[error("bad padding or ciphertext length")]
    Padding,
    #[error("plaintext is not a JSON object")]
    NotJson,
}

/// The fields of decrypted user data that the hub uses.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserData {
    pub open_id: Option<String>,
    pub union_id: Option<String>,
    pub nick_name: Option<String>,
    pub avatar_url: Option<String>,
    pub watermark: Option<Watermark>,
}

/// `watermark` of decrypted data.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Watermark {
    pub appid: String,
    pub timestamp: Option<i64>,
}

/// Decrypts `encrypted_data` with `key = base64(session_key)` and `iv`.
pub fn decrypt_user_data(
    session_key: &str,
    encrypted_data: &str,
    iv: &str,
) -> Result<UserData, DecryptError> {
    let key = STANDARD
        .decode(session_key)
        .map_err(|_| DecryptError::Base64("session_key"))?;
    let iv = STANDARD
        .decode(iv)
        .map_err(|_| DecryptError::Base64("iv"))?;
    let data = STANDARD
        .decode(encrypted_data)
        .map_err(|_| DecryptError::Base64("encrypted_data"))?;
    if key.len() != 16 {
        return Err(DecryptError::Length("session_key"));
    }
    if iv.len() != 16 {
        return Err(DecryptError::Length("iv"));
    }
    let plain = Aes128CbcDec::new_from_slices(&key, &iv)
        .map_err(|_| DecryptError::Length("key and iv"))?
        .decrypt_padded_vec_mut::<Pkcs7>(&data)
        .map_err(|_| DecryptError::Padding)?;
    serde_json::from_slice(&plain).map_err(|_| DecryptError::NotJson)
}

/// Whether `signature` (hex) equals `sha1(raw_data + session_key)`, in constant time.
pub fn signature_matches(raw_data: &str, session_key: &str, signature: &str) -> bool {
    let mut sha = Sha1::new();
    sha.update(raw_data.as_bytes());
    sha.update(session_key.as_bytes());
    let expected = hex::encode(sha.finalize());
    expected
        .as_bytes()
        .ct_eq(signature.to_ascii_lowercase().as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // WeChat's published example (WECHAT.md).
    const RAW: &str = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;

    #[test]
    fn official_signature_example() {
        assert!(signature_matches(
            RAW,
            "HyVFkGl5F5OQWJZZaNzBBg==",
            "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
        ));
        assert!(!signature_matches(
            RAW,
            "HyVFkGl5F5OQWJZZaNzBBg==",
            "75e81ceda165f4ffa64f4068af58c64b8f54b88d"
        ));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let k = "HyVFkGl5F5OQWJZZaNzBBg==";
        assert_eq!(
            decrypt_user_data("%%", "AA==", k),
            Err(DecryptError::Base64("session_key"))
        );
        assert_eq!(
            decrypt_user_data("AAAA", "AA==", k),
            Err(DecryptError::Length("session_key"))
        );
        assert_eq!(
            decrypt_user_data(k, "AAAA", "AAAA"),
            Err(DecryptError::Length("iv"))
        );
        assert_eq!(decrypt_user_data(k, "AAAA", k), Err(DecryptError::Padding));
    }
}
