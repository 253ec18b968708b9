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

#[cfg(test)]
mod props {
    use super::*;
    use aes::cipher::BlockEncryptMut;
    use proptest::prelude::*;

    type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

    fn encrypt(key: &[u8; 16], iv: &[u8; 16], plain: &[u8]) -> String {
        STANDARD.encode(
            Aes128CbcEnc::new_from_slices(key, iv)
                .expect("16-byte key and iv")
                .encrypt_padded_vec_mut::<Pkcs7>(plain),
        )
    }

    proptest! {
        /// Whatever a client sends as key, data and iv: an error or data, never a panic.
        #[test]
        fn any_text_decrypts_or_fails_cleanly(key in ".{0,40}", data in ".{0,200}", iv in ".{0,40}") {
            let _ = decrypt_user_data(&key, &data, &iv);
        }

        /// Base64 of the wrong length is a length error, never a panic.
        #[test]
        fn wrong_lengths_are_named(key in prop::collection::vec(any::<u8>(), 0..40),
                                   iv in prop::collection::vec(any::<u8>(), 0..40)) {
            let got = decrypt_user_data(&STANDARD.encode(&key), "AAAA", &STANDARD.encode(&iv));
            if key.len() != 16 {
                prop_assert_eq!(got, Err(DecryptError::Length("session_key")));
            } else if iv.len() != 16 {
                prop_assert_eq!(got, Err(DecryptError::Length("iv")));
            }
        }

        /// Any plaintext under the right key: its JSON, or `NotJson`.
        #[test]
        fn any_plaintext_is_json_or_not_json(key: [u8; 16], iv: [u8; 16],
                                            plain in prop::collection::vec(any::<u8>(), 0..300)) {
            let got = decrypt_user_data(&STANDARD.encode(key), &encrypt(&key, &iv, &plain), &STANDARD.encode(iv));
            prop_assert!(got.is_ok() || got == Err(DecryptError::NotJson));
        }

        /// What WeChat encrypts comes back field for field.
        #[test]
        fn user_data_round_trips(key: [u8; 16], iv: [u8; 16], open_id in "[a-zA-Z0-9_-]{1,40}",
                                 nick in "\\PC{0,20}", appid in "wx[a-f0-9]{16}") {
            let plain = serde_json::json!({"openId": open_id, "nickName": nick,
                "watermark": {"appid": appid, "timestamp": 1}}).to_string();
            let got = decrypt_user_data(&STANDARD.encode(key), &encrypt(&key, &iv, plain.as_bytes()),
                &STANDARD.encode(iv)).expect("decrypts");
            prop_assert_eq!(got.open_id, Some(open_id));
            prop_assert_eq!(got.nick_name, Some(nick));
            prop_assert_eq!(got.watermark.map(|w| w.appid), Some(appid));
        }

        /// The signature matches exactly sha1(raw + key), whatever the input.
        #[test]
        fn signature_matches_only_its_own_digest(raw in ".{0,100}", key in ".{0,30}", other in "[0-9a-f]{0,40}") {
            let good = hex::encode(Sha1::digest(format!("{raw}{key}").as_bytes()));
            prop_assert!(signature_matches(&raw, &key, &good));
            prop_assert_eq!(signature_matches(&raw, &key, &other), other == good);
        }
    }
}
