//! The calls: the code image (`getwxacodeunlimit`), who holds a `wx.login`
//! code (`jscode2session`) and the phone number behind a `getPhoneNumber`
//! code (`getuserphonenumber`).

use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::{WechatClient, WechatError, outcome};

/// What `jscode2session` tells about a person.
#[derive(Clone)]
pub struct WxSession {
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: SecretString,
}

/// A mini-program code image.
#[derive(Clone)]
pub struct CodeImage {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[derive(Deserialize)]
struct ErrBody {
    errcode: Option<i64>,
    errmsg: Option<String>,
}

impl WechatClient {
    /// `wxa/getwxacodeunlimit`: the code image for `scene` with the app's page.
    pub async fn code_image(&self, app_id: &str, scene: &str) -> Result<CodeImage, WechatError> {
        const API: &str = "getwxacodeunlimit";
        let app = self.app(app_id)?;
        let mut body = json!({
            "scene": scene,
            "page": app.page,
            "env_version": app.env_version,
            "check_path": app.check_path,
            "width": app.width,
            "auto_color": app.auto_color,
            "is_hyaline": app.is_hyaline,
        });
        if let Some(color) = app.line_color {
            body["line_color"] = json!(color);
        }
        let started = Instant::now();
        let result = self
            .with_token(app_id, |token| {
                let body = &body;
                async move {
                    let (content_type, bytes) = self
                        .post_json(API, "wxa/getwxacodeunlimit", &token, body)
                        .await?;
                    if let Ok(ErrBody {
                        errcode: Some(code),
                        errmsg,
                    }) = serde_json::from_slice::<ErrBody>(&bytes)
                        && code != 0
                    {
                        return Err(WechatError {
                            api: API,
                            errcode: code,
                            errmsg: errmsg.unwrap_or_default(),
                        });
                    }
                    let image_type = content_type
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_owned();
                    // Only what browsers render as a plain image: an SVG or
                    // anything else under the hub's origin could run script.
                    if !matches!(image_type.as_str(), "image/png" | "image/jpeg")
                        || bytes.is_empty()
                    {
                        return Err(WechatError::garbage(
                            API,
                            "answer is not a PNG or JPEG image",
                        ));
                    }
                    Ok(CodeImage {
                        content_type: image_type,
                        bytes: bytes.to_vec(),
                    })
                }
            })
            .await;
        self.observe(API, outcome(&result), started);
        result
    }

    /// `wxa/business/getuserphonenumber`: the phone number behind a
    /// `getPhoneNumber` button's `code` (`phone_info.phoneNumber`, with the
    /// country code when it is not China's).
    pub async fn phone_number(&self, app_id: &str, code: &str) -> Result<String, WechatError> {
        const API: &str = "getuserphonenumber";
        self.app(app_id)?;
        let body = json!({ "code": code });
        let started = Instant::now();
        let result = self
            .with_token(app_id, |token| {
                let body = &body;
                async move {
                    let (_, bytes) = self
                        .post_json(API, "wxa/business/getuserphonenumber", &token, body)
                        .await?;
                    #[derive(Deserialize)]
                    #[serde(rename_all = "camelCase")]
                    struct PhoneInfo {
                        phone_number: Option<String>,
                    }
                    #[derive(Deserialize)]
                    struct Answer {
                        errcode: Option<i64>,
                        errmsg: Option<String>,
                        phone_info: Option<PhoneInfo>,
                    }
                    let a: Answer = serde_json::from_slice(&bytes)
                        .map_err(|_| WechatError::garbage(API, "not JSON"))?;
                    let code = a.errcode.unwrap_or(0);
                    if code != 0 {
                        return Err(WechatError {
                            api: API,
                            errcode: code,
                            errmsg: a.errmsg.unwrap_or_default(),
                        });
                    }
                    a.phone_info
                        .and_then(|p| p.phone_number)
                        .filter(|n| is_phone_number(n))
                        .ok_or_else(|| WechatError::garbage(API, "no phone number in answer"))
                }
            })
            .await;
        self.observe(API, outcome(&result), started);
        result
    }

    /// `sns/jscode2session`: who holds this `wx.login` code.
    pub async fn code_to_session(
        &self,
        app_id: &str,
        code: &str,
    ) -> Result<WxSession, WechatError> {
        const API: &str = "jscode2session";
        let app = self.app(app_id)?;
        let started = Instant::now();
        let result = async {
            #[derive(Deserialize)]
            struct Answer {
                openid: Option<String>,
                unionid: Option<String>,
                session_key: Option<String>,
                errcode: Option<i64>,
                errmsg: Option<String>,
            }
            let request = self.http.get(self.url("sns/jscode2session")?).query(&[
                ("appid", app.app_id.as_str()),
                ("secret", app.secret.expose_secret()),
                ("js_code", code),
                ("grant_type", "authorization_code"),
            ]);
            let a: Answer = Self::json_answer(API, request).await?;
            match (a.openid, a.session_key, a.errcode.unwrap_or(0)) {
                (Some(openid), Some(key), 0) if !openid.is_empty() && !key.is_empty() => {
                    Ok(WxSession {
                        openid,
                        unionid: a.unionid.filter(|u| !u.is_empty()),
                        session_key: SecretString::from(key),
                    })
                }
                (_, _, code) => Err(WechatError {
                    api: API,
                    errcode: if code == 0 { -1 } else { code },
                    errmsg: a.errmsg.unwrap_or_else(|| "no openid in answer".into()),
                }),
            }
        }
        .await;
        self.observe(API, outcome(&result), started);
        result
    }
}

/// Whether WeChat's `phoneNumber` looks like one: an optional `+`, then
/// 5 to 20 digits (spaces and dashes allowed between them).
fn is_phone_number(n: &str) -> bool {
    let digits = n.strip_prefix('+').unwrap_or(n);
    let count = digits.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&count)
        && digits.len() <= 32
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
}
