//! What a confirm may say about the person ([`ConfirmInput`]), checked
//! against WeChat's session: the nickname and avatar (plain, encrypted or
//! signed), and the phone number behind a `getPhoneNumber` code.

use serde::Deserialize;
use tracing::{Instrument, info_span};

use super::LoginError;
use super::exchanges::check_code;
use crate::scene::Scanner;
use crate::wechat::WechatClient;
use crate::wechat::crypto::{decrypt_user_data, signature_matches};

/// Longest nickname accepted, in characters.
const MAX_NICKNAME: usize = 64;
/// Longest avatar URL accepted, in bytes.
const MAX_AVATAR_URL: usize = 2048;

/// Everything a confirm may carry.
pub struct ConfirmInput {
    pub encrypted_data: Option<String>,
    pub iv: Option<String>,
    pub raw_data: Option<String>,
    pub signature: Option<String>,
    pub profile: Option<ProfileInput>,
    /// The `code` of the `getPhoneNumber` button, when the person shared it.
    pub phone_code: Option<String>,
}

/// The profile a confirm may carry.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    /// At most 64 characters.
    pub nickname: Option<String>,
    /// An `https` URL of at most 2048 bytes.
    pub avatar_url: Option<String>,
}

/// The person as a confirm shows them, checked.
#[derive(Debug, Default)]
pub(super) struct Profile {
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    /// The phone number WeChat gave for the confirm's `phone_code`.
    pub phone: Option<String>,
}

/// The phone number behind a `getPhoneNumber` code of `app_id`'s app, from
/// WeChat.
pub(super) async fn phone_number(
    wechat: &WechatClient,
    app_id: &str,
    code: &str,
) -> Result<String, LoginError> {
    check_code("phone_code", code)?;
    Ok(wechat
        .phone_number(app_id, code)
        .instrument(info_span!("wechat_phone"))
        .await?)
}

impl Profile {
    /// Nickname and avatar from the plain profile, the decrypted data or the
    /// signed raw data, after checking each against `b`'s WeChat session.
    pub(super) fn checked(b: &Scanner, input: ConfirmInput) -> Result<Self, LoginError> {
        let mut nickname = None;
        let mut avatar = None;
        match (&input.encrypted_data, &input.iv) {
            (Some(data), Some(iv)) => {
                let d = decrypt_user_data(&b.session_key, data, iv)
                    .map_err(|e| LoginError::DecryptFailed(e.to_string()))?;
                if d.watermark.as_ref().map(|w| w.appid.as_str()) != Some(b.app_id.as_str()) {
                    return Err(LoginError::WatermarkMismatch);
                }
                if d.open_id.as_ref().is_some_and(|o| *o != b.openid) {
                    return Err(LoginError::IdentityMismatch(
                        "decrypted openId is not the session's openid",
                    ));
                }
                if let (Some(u), Some(mine)) = (&d.union_id, &b.unionid)
                    && u != mine
                {
                    return Err(LoginError::IdentityMismatch(
                        "decrypted unionId is not the session's unionid",
                    ));
                }
                nickname = d.nick_name;
                avatar = d.avatar_url;
            }
            (None, None) => {}
            _ => {
                return Err(LoginError::InvalidRequest(
                    "encrypted_data and iv go together".into(),
                ));
            }
        }
        match (&input.raw_data, &input.signature) {
            (Some(raw), Some(sig)) => {
                if !signature_matches(raw, &b.session_key, sig) {
                    return Err(LoginError::SignatureMismatch);
                }
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Raw {
                    nick_name: Option<String>,
                    avatar_url: Option<String>,
                }
                let r: Raw = serde_json::from_str(raw).map_err(|_| {
                    LoginError::InvalidRequest("raw_data is not a JSON object".into())
                })?;
                nickname = nickname.or(r.nick_name);
                avatar = avatar.or(r.avatar_url);
            }
            (None, None) => {}
            _ => {
                return Err(LoginError::InvalidRequest(
                    "raw_data and signature go together".into(),
                ));
            }
        }
        if let Some(p) = input.profile {
            nickname = p.nickname.or(nickname);
            avatar = p.avatar_url.or(avatar);
        }
        let nickname = nickname
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        if nickname
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NICKNAME || n.chars().any(char::is_control))
        {
            return Err(LoginError::InvalidRequest(format!(
                "nickname: at most {MAX_NICKNAME} printable characters"
            )));
        }
        let avatar_url = avatar.filter(|a| !a.is_empty());
        if let Some(a) = &avatar_url {
            let ok = a.len() <= MAX_AVATAR_URL
                && url::Url::parse(a).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(LoginError::InvalidRequest(
                    "avatar_url: an http(s) URL of at most 2048 bytes".into(),
                ));
            }
        }
        Ok(Profile {
            nickname,
            avatar_url,
            phone: None,
        })
    }
}
