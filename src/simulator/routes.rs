//! The simulator's handlers, mounted by `crate::http::routes` in simulator
//! mode: WeChat's server API under `/sim/wechat/` (answering as WeChat does:
//! HTTP 200 with an `errcode`, as the hub's WeChat client expects), and the
//! simulated phone's WeChat app under `/sim/api/` (the hub's own kind of
//! endpoint: refusals are RFC 9457 problems).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::Digest;

use super::state::CodeRefusal;
use super::{SimRefusal, Simulator, qr_png, sim_openid, sim_phone, sim_unionid};
use crate::clock::now_ms;
use crate::error::Fault;
use crate::http::error::ApiError;
use crate::keys::secrets_equal;

fn wx_error(errcode: i64, errmsg: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json!({"errcode": errcode, "errmsg": errmsg}).to_string())
}

/// Body as WeChat reads it: JSON regardless of the declared content type.
fn json_body(body: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

/// `POST /sim/wechat/cgi-bin/stable_token`
pub async fn stable_token(sim: web::Data<Arc<Simulator>>, body: web::Bytes) -> HttpResponse {
    let Some(v) = json_body(&body) else {
        return wx_error(47001, "data format error");
    };
    if v["grant_type"] != "client_credential" {
        return wx_error(40002, "invalid grant_type");
    }
    let Some(app) = v["appid"].as_str().and_then(|id| sim.app(id)) else {
        return wx_error(40013, "invalid appid");
    };
    if !secrets_equal(
        v["secret"].as_str().unwrap_or(""),
        app.secret.expose_secret(),
    ) {
        return wx_error(40125, "invalid appsecret");
    }
    let force = v["force_refresh"].as_bool().unwrap_or(false);
    let (token, expires_in) = sim.held.issue_token(&app.app_id, force);
    HttpResponse::Ok().json(json!({"access_token": token, "expires_in": expires_in}))
}

#[derive(Deserialize)]
pub struct TokenQuery {
    access_token: Option<String>,
}

/// `POST /sim/wechat/wxa/getwxacodeunlimit`: a QR code of the simulated
/// phone's page for the scene, as PNG.
pub async fn getwxacodeunlimit(
    sim: web::Data<Arc<Simulator>>,
    query: web::Query<TokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(app_id) = query
        .access_token
        .as_deref()
        .and_then(|t| sim.held.token_app(t))
    else {
        return wx_error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    };
    if sim.held.take_quota_failure(&app_id) {
        return wx_error(45009, "reach max api daily quota limit");
    }
    let Some(v) = json_body(&body) else {
        return wx_error(
            40169,
            "invalid length for scene, or the data is not json string",
        );
    };
    let scene = v["scene"].as_str().unwrap_or("");
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$&'()*+,/:;=?@-._~".contains(c);
    if scene.is_empty() || scene.len() > 32 {
        return wx_error(
            40169,
            "invalid length for scene, or the data is not json string",
        );
    }
    if !scene.chars().all(allowed) {
        return wx_error(40129, "invalid scene");
    }
    if let Some(page) = v["page"].as_str()
        && (page.starts_with('/') || page.contains('?'))
    {
        return wx_error(41030, "invalid page rid");
    }
    if let Some(env) = v["env_version"].as_str()
        && !matches!(env, "release" | "trial" | "develop")
    {
        return wx_error(40097, "invalid args");
    }
    let width = v["width"].as_u64().unwrap_or(430).clamp(280, 1280) as u32;
    let target = format!("{}/sim/phone?scene={scene}", sim.public_url);
    match qr_png(&target, width) {
        Ok(png) => HttpResponse::Ok().content_type("image/png").body(png),
        Err(e) => {
            tracing::error!(error = %e, "simulator could not draw a code");
            wx_error(-1, "system error")
        }
    }
}

#[derive(Deserialize)]
pub struct SessionQuery {
    appid: Option<String>,
    secret: Option<String>,
    js_code: Option<String>,
    grant_type: Option<String>,
}

/// `GET /sim/wechat/sns/jscode2session`
pub async fn jscode2session(
    sim: web::Data<Arc<Simulator>>,
    q: web::Query<SessionQuery>,
) -> HttpResponse {
    let Some(app) = q.appid.as_deref().and_then(|id| sim.app(id)) else {
        return wx_error(40013, "invalid appid");
    };
    if !secrets_equal(
        q.secret.as_deref().unwrap_or(""),
        app.secret.expose_secret(),
    ) {
        return wx_error(40125, "invalid appsecret");
    }
    if q.grant_type.as_deref() != Some("authorization_code") {
        return wx_error(40002, "invalid grant_type");
    }
    let code = q.js_code.as_deref().unwrap_or("");
    match sim.held.redeem(&app.app_id, code) {
        Ok(c) => HttpResponse::Ok().json(json!({
            "openid": sim_openid(&c.app_id, &c.user),
            "unionid": sim_unionid(&c.user),
            "session_key": c.session_key,
        })),
        Err(CodeRefusal::Invalid) => wx_error(40029, "invalid code"),
        Err(CodeRefusal::Used) => wx_error(40163, "code been used"),
    }
}

/// `POST /sim/wechat/wxa/business/getuserphonenumber`
pub async fn getuserphonenumber(
    sim: web::Data<Arc<Simulator>>,
    query: web::Query<TokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    if !query
        .access_token
        .as_deref()
        .is_some_and(|t| sim.held.token_valid(t))
    {
        return wx_error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    }
    let Some(code) = json_body(&body).and_then(|v| v["code"].as_str().map(str::to_owned)) else {
        return wx_error(47001, "data format error");
    };
    let Some((app_id, user)) = sim.held.take_phone_code(&code) else {
        return wx_error(40029, "invalid code");
    };
    let number = sim_phone(&user);
    HttpResponse::Ok().json(json!({
        "errcode": 0, "errmsg": "ok",
        "phone_info": {"phoneNumber": number, "purePhoneNumber": number, "countryCode": "86",
            "watermark": {"appid": app_id, "timestamp": now_ms() / 1000}}
    }))
}

#[derive(Deserialize)]
pub struct LoginReq {
    app_id: Option<String>,
    user: String,
}

/// The pretend person's name, trimmed: 1-64 characters.
fn sim_user(user: &str) -> Result<&str, ApiError> {
    let user = user.trim();
    if user.is_empty() || user.len() > 64 {
        return Err(ApiError::InvalidRequest(
            "user must be 1-64 characters".into(),
        ));
    }
    Ok(user)
}

fn unknown_app(app_id: &str) -> ApiError {
    ApiError::InvalidRequest(format!("unknown app {app_id:?}"))
}

/// `POST /sim/api/login`: plays `wx.login`: `{user, app_id?}` -> `{code, app_id}`.
pub async fn sim_login(
    sim: web::Data<Arc<Simulator>>,
    req: web::Json<LoginReq>,
) -> Result<HttpResponse, ApiError> {
    hand_out(&sim, &req, |app_id, user| sim.login(app_id, user), true)
}

/// `POST /sim/api/phone`: plays the `getPhoneNumber` button:
/// `{user, app_id?}` -> `{code}`.
pub async fn sim_phone_code(
    sim: web::Data<Arc<Simulator>>,
    req: web::Json<LoginReq>,
) -> Result<HttpResponse, ApiError> {
    hand_out(
        &sim,
        &req,
        |app_id, user| sim.phone_code(app_id, user),
        false,
    )
}

/// A code `make` hands out for the pretend person `req` names (the app
/// defaults to the first), or why not; `with_app` adds the app to the answer.
/// These are the simulated phone's calls, not WeChat's API: refusals are
/// problem documents like the rest of the hub's.
fn hand_out(
    sim: &Simulator,
    req: &LoginReq,
    make: impl FnOnce(&str, &str) -> Result<String, SimRefusal>,
    with_app: bool,
) -> Result<HttpResponse, ApiError> {
    let app_id = sim.app_or_first(req.app_id.as_ref());
    let user = sim_user(&req.user)?;
    match make(&app_id, user) {
        Ok(code) if with_app => {
            Ok(HttpResponse::Ok().json(json!({"code": code, "app_id": app_id})))
        }
        Ok(code) => Ok(HttpResponse::Ok().json(json!({"code": code}))),
        Err(SimRefusal::UnknownApp) => Err(unknown_app(&app_id)),
        Err(SimRefusal::Full) => {
            Err(Fault::unavailable("the simulator holds too many codes; retry later").into())
        }
    }
}

#[derive(Deserialize)]
pub struct QuotaReq {
    app_id: Option<String>,
    calls: u32,
}

/// `POST /sim/api/quota`: quota errors on demand: `{app_id?, calls}` makes
/// the app's next `calls` code requests (at most 100) answer 45009, as
/// WeChat's per-minute limit does.
pub async fn sim_quota(
    sim: web::Data<Arc<Simulator>>,
    req: web::Json<QuotaReq>,
) -> Result<HttpResponse, ApiError> {
    let app_id = sim.app_or_first(req.app_id.as_ref());
    if !sim.knows(&app_id) {
        return Err(unknown_app(&app_id));
    }
    if req.calls > 100 {
        return Err(ApiError::InvalidRequest("calls must be 0-100".into()));
    }
    sim.held.set_quota_failures(&app_id, req.calls);
    Ok(HttpResponse::Ok().json(json!({"app_id": app_id, "calls": req.calls})))
}

#[derive(Deserialize)]
pub struct UserInfoReq {
    app_id: Option<String>,
    user: String,
    nickname: Option<String>,
    avatar_url: Option<String>,
}

/// `POST /sim/api/userinfo`: plays `wx.getUserInfo`: encrypted data, iv, raw
/// data and signature made with the person's current session key, as
/// WeChat's client returns them. A person without a session (no
/// `/sim/api/login` yet) is 404.
pub async fn sim_userinfo(
    sim: web::Data<Arc<Simulator>>,
    req: web::Json<UserInfoReq>,
) -> Result<HttpResponse, ApiError> {
    let app_id = sim.app_or_first(req.app_id.as_ref());
    if !sim.knows(&app_id) {
        return Err(unknown_app(&app_id));
    }
    let user = sim_user(&req.user)?;
    let Some(key_b64) = sim.held.session_key(&app_id, user) else {
        return Err(ApiError::BadRequestStatus {
            status: StatusCode::NOT_FOUND,
            detail: "this person has no session in this app; call /sim/api/login first".into(),
        });
    };
    let nickname = req.nickname.clone().unwrap_or_else(|| "微信用户".into());
    let avatar = req.avatar_url.clone().unwrap_or_default();
    let raw =
        json!({"nickName": nickname, "gender": 0, "language": "zh_CN", "city": "", "province": "",
        "country": "", "avatarUrl": avatar})
        .to_string();
    let mut full: Value = serde_json::from_str(&raw).unwrap_or_default();
    full["openId"] = json!(sim_openid(&app_id, user));
    full["unionId"] = json!(sim_unionid(user));
    full["watermark"] = json!({"appid": app_id, "timestamp": now_ms() / 1000});
    let broken = |what: &str| ApiError::from(Fault::internal(format!("simulator: {what}")));
    let key = STANDARD
        .decode(&key_b64)
        .map_err(|_| broken("a session key is not base64"))?;
    let mut iv = [0u8; 16];
    rand::rng().fill_bytes(&mut iv);
    let enc = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv)
        .map_err(|_| broken("a session key is not 16 bytes"))?;
    let cipher = enc.encrypt_padded_vec_mut::<Pkcs7>(full.to_string().as_bytes());
    let mut sha = Sha1::new();
    sha.update(raw.as_bytes());
    sha.update(key_b64.as_bytes());
    Ok(HttpResponse::Ok().json(json!({
        "encrypted_data": STANDARD.encode(cipher),
        "iv": STANDARD.encode(iv),
        "raw_data": raw,
        "signature": hex::encode(sha.finalize()),
    })))
}
