//! Encrypted user data and signed raw data, with vectors made by independent
//! implementations: the `openssl` command line (tests/fixtures/userdata.json,
//! made by tests/fixtures/make_userdata.sh, and a fresh one at test time) and
//! WeChat's own published samples.

use std::io::Write;
use std::process::{Command, Stdio};

use scanlogin::wechat::crypto::decrypt_user_data;
use serde_json::{Value, json};

use crate::helpers::{
    APP_ID, Scene, TestApp, assert_problem, ok_json, spawn_app, spawn_app_with, unique,
};

fn fixtures() -> Value {
    serde_json::from_str(include_str!("../fixtures/userdata.json")).expect("fixture JSON")
}

fn fx(key: &str) -> String {
    fixtures()[key].as_str().expect("fixture key").to_owned()
}

/// WeChat's published encryptedData sample (the demo of its "open data
/// decryption" documentation, reproduced by WxJava, wechatpy, gopay ...).
mod official {
    pub const APP_ID: &str = "wx4f4bc4dec97d474b";
    pub const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    pub const ENCRYPTED_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
    pub const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    pub const OPENID: &str = "oGZUI0egBJY1zhBYw2KhdUfwVJJE";
    pub const UNIONID: &str = "ocMvos6NjeKLIBqg5Mr9QjxrP1FA";
    pub const AVATAR: &str = "http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0";

    /// The signature example of WECHAT.md.
    pub const RAW_DATA: &str = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    pub const RAW_SESSION_KEY: &str = "HyVFkGl5F5OQWJZZaNzBBg==";
    pub const SIGNATURE: &str = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";
}

/// A scene scanned by a person with this session key and unionid; returns
/// (scene, mp_token).
async fn scanned_with(
    app: &TestApp,
    openid: &str,
    unionid: Option<&str>,
    key: &str,
) -> (Scene, String) {
    let scene = app.create_scene().await;
    let code = unique("code");
    app.fake.add_code(&code, openid, unionid, key);
    let mp_token = app.scanned(&scene.id, &code).await;
    (scene, mp_token)
}

/// A confirm carrying encrypted data; returns the response.
async fn confirm_encrypted(
    app: &TestApp,
    scene: &Scene,
    mp_token: &str,
    data: &str,
    iv: &str,
) -> reqwest::Response {
    app.confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
        "encrypted_data": data, "iv": iv}))
        .await
}

/// The redeemed user of a confirmed scene.
async fn redeemed_user(app: &TestApp, scene: &Scene) -> Value {
    let event = ok_json(app.events(scene, None, 0).await).await;
    let ticket = event["ticket"].as_str().expect("ticket");
    ok_json(app.redeem(ticket).await).await["user"].clone()
}

#[tokio::test]
async fn encrypted_data_confirms_and_sets_the_profile() {
    let app = spawn_app().await;
    let (scene, mp_token) =
        scanned_with(&app, "o_alice", Some("u_alice"), &fx("session_key")).await;
    let res = confirm_encrypted(&app, &scene, &mp_token, &fx("user"), &fx("iv")).await;
    assert_eq!(ok_json(res).await["state"], "confirmed");
    let event = ok_json(app.events(&scene, None, 0).await).await;
    assert_eq!(
        event["user"],
        json!({"nickname": "Alice", "avatar_url": "https://img.example/alice.png"})
    );
    let user = redeemed_user(&app, &scene).await;
    assert_eq!(user["nickname"], "Alice");
    assert_eq!(user["avatar_url"], "https://img.example/alice.png");
    assert_eq!(user["unionid"], "u_alice");
}

#[tokio::test]
async fn broken_encrypted_data_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (scene, mp_token) =
        scanned_with(&app, "o_alice", Some("u_alice"), &fx("session_key")).await;
    let cases: Vec<(String, String, &str)> = vec![
        ("%%% not base64 %%%".into(), fx("iv"), "decrypt_failed"),
        (fx("user"), "%%%".into(), "decrypt_failed"),
        (fx("user"), fx("short_iv"), "decrypt_failed"),
        (fx("bad_padding"), fx("iv"), "decrypt_failed"),
        (fx("not_json"), fx("iv"), "decrypt_failed"),
        // Not a whole number of blocks; nothing at all.
        ("AAAA".into(), fx("iv"), "decrypt_failed"),
        (String::new(), fx("iv"), "decrypt_failed"),
        (fx("other_app"), fx("iv"), "watermark_mismatch"),
        (fx("other_openid"), fx("iv"), "identity_mismatch"),
    ];
    for (data, iv, code) in cases {
        let res = confirm_encrypted(&app, &scene, &mp_token, &data, &iv).await;
        let body = assert_problem(res, 400, code).await;
        assert_eq!(app.state_of(&scene).await, "scanned", "after {body}");
    }
    // Half a pair is a bad request.
    for half in [
        json!({"encrypted_data": fx("user")}),
        json!({"iv": fx("iv")}),
        json!({"raw_data": "{}"}),
        json!({"signature": "00"}),
    ] {
        let mut body = json!({"scene_id": scene.id, "mp_token": mp_token});
        for (k, v) in half.as_object().expect("object") {
            body[k] = v.clone();
        }
        assert_problem(app.confirm(&body).await, 400, "invalid_request").await;
    }
    assert_eq!(app.state_of(&scene).await, "scanned");
    // The good data still confirms afterwards.
    let res = confirm_encrypted(&app, &scene, &mp_token, &fx("user"), &fx("iv")).await;
    ok_json(res).await;
}

#[tokio::test]
async fn wrong_session_key_fails_to_decrypt() {
    let app = spawn_app().await;
    // WeChat gave this person another key than the one the data was made with.
    let (scene, mp_token) =
        scanned_with(&app, "o_alice", Some("u_alice"), &fx("other_session_key")).await;
    let res = confirm_encrypted(&app, &scene, &mp_token, &fx("user"), &fx("iv")).await;
    assert_problem(res, 400, "decrypt_failed").await;
    assert_eq!(app.state_of(&scene).await, "scanned");
    // A session key of the wrong length.
    let (scene, mp_token) =
        scanned_with(&app, "o_alice", Some("u_alice"), &fx("short_session_key")).await;
    let res = confirm_encrypted(&app, &scene, &mp_token, &fx("user"), &fx("iv")).await;
    assert_problem(res, 400, "decrypt_failed").await;
    assert_eq!(app.state_of(&scene).await, "scanned");
}

#[tokio::test]
async fn decrypted_unionid_must_match_the_session() {
    let app = spawn_app().await;
    let (scene, mp_token) =
        scanned_with(&app, "o_alice", Some("u_someone_else"), &fx("session_key")).await;
    let res = confirm_encrypted(&app, &scene, &mp_token, &fx("user"), &fx("iv")).await;
    assert_problem(res, 400, "identity_mismatch").await;
    assert_eq!(app.state_of(&scene).await, "scanned");
}

#[tokio::test]
async fn identity_comes_from_wechat_not_from_the_data() {
    let app = spawn_app().await;
    // The data claims o_mallory; the session is o_mallory's too: fine, and
    // the identity recorded is the session's.
    let (scene, mp_token) = scanned_with(&app, "o_mallory", None, &fx("session_key")).await;
    let res = confirm_encrypted(&app, &scene, &mp_token, &fx("other_openid"), &fx("iv")).await;
    ok_json(res).await;
    let user = redeemed_user(&app, &scene).await;
    assert_eq!(
        user["identities"],
        json!([{"app_id": APP_ID, "openid": "o_mallory"}])
    );
    assert_eq!(user["nickname"], "Mallory");
    // An openid sent by the phone is not a field the hub accepts.
    let (scene, mp_token) = scanned_with(&app, "o_real", None, &fx("session_key")).await;
    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "openid": "o_fake"}))
        .await;
    // Not a field of the confirm body: ignored, and the identity is the
    // session's.
    ok_json(res).await;
    let user = redeemed_user(&app, &scene).await;
    assert_eq!(
        user["identities"],
        json!([{"app_id": APP_ID, "openid": "o_real"}])
    );
}

#[tokio::test]
async fn official_signature_example_and_a_wrong_signature() {
    let app = spawn_app().await;
    let (scene, mp_token) = scanned_with(&app, "o_band", None, official::RAW_SESSION_KEY).await;
    let mut wrong = official::SIGNATURE.to_owned();
    wrong.replace_range(0..1, "8");
    for sig in [wrong.as_str(), "", "not hex at all"] {
        let res = app
            .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
                "raw_data": official::RAW_DATA, "signature": sig}))
            .await;
        assert_problem(res, 400, "signature_mismatch").await;
        assert_eq!(app.state_of(&scene).await, "scanned");
    }
    // A tampered raw_data with the genuine signature.
    let tampered = official::RAW_DATA.replace("Band", "Evil");
    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "raw_data": tampered, "signature": official::SIGNATURE}))
        .await;
    assert_problem(res, 400, "signature_mismatch").await;
    assert_eq!(app.state_of(&scene).await, "scanned");

    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "raw_data": official::RAW_DATA, "signature": official::SIGNATURE}))
        .await;
    ok_json(res).await;
    let user = redeemed_user(&app, &scene).await;
    assert_eq!(user["nickname"], "Band");
    assert_eq!(
        user["avatar_url"],
        "http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"
    );
}

#[tokio::test]
async fn official_encrypted_sample_through_the_hub() {
    let app = spawn_app_with(|cfg| {
        cfg.apps = vec![(official::APP_ID.into(), "sample-app-secret".into())];
    })
    .await;
    let scene = app.create_scene().await;
    let code = unique("code");
    app.fake.add_code(
        &code,
        official::OPENID,
        Some(official::UNIONID),
        official::SESSION_KEY,
    );
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": code,
            "encrypted_data": official::ENCRYPTED_DATA, "iv": official::IV}))
        .await;
    ok_json(res).await;
    let user = redeemed_user(&app, &scene).await;
    assert_eq!(user["nickname"], "Band");
    assert_eq!(user["avatar_url"], official::AVATAR);
    assert_eq!(user["unionid"], official::UNIONID);
    assert_eq!(
        user["identities"],
        json!([{"app_id": official::APP_ID, "openid": official::OPENID}])
    );
}

#[test]
fn official_encrypted_sample_decrypts() {
    let d = decrypt_user_data(
        official::SESSION_KEY,
        official::ENCRYPTED_DATA,
        official::IV,
    )
    .expect("WeChat's sample decrypts");
    assert_eq!(d.open_id.as_deref(), Some(official::OPENID));
    assert_eq!(d.union_id.as_deref(), Some(official::UNIONID));
    assert_eq!(d.nick_name.as_deref(), Some("Band"));
    assert_eq!(d.avatar_url.as_deref(), Some(official::AVATAR));
    let w = d.watermark.expect("watermark");
    assert_eq!(w.appid, official::APP_ID);
    assert_eq!(w.timestamp, Some(1_477_314_187));
    // One flipped ciphertext bit in the last block breaks it.
    let mut bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        official::ENCRYPTED_DATA,
    )
    .expect("base64");
    let n = bytes.len();
    bytes[n - 1] ^= 0x01;
    let broken = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes);
    assert!(decrypt_user_data(official::SESSION_KEY, &broken, official::IV).is_err());
}

/// Encrypts with the `openssl` command line, or `None` when that fails.
fn openssl_encrypt(plain: &str, key_hex: &str, iv_hex: &str) -> Option<String> {
    let mut child = Command::new("openssl")
        .args([
            "enc",
            "-aes-128-cbc",
            "-K",
            key_hex,
            "-iv",
            iv_hex,
            "-base64",
            "-A",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(plain.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).ok())
        .flatten()
}

#[tokio::test]
async fn fresh_openssl_vector_with_a_unicode_nickname() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let key: [u8; 16] = rand::random();
    let iv: [u8; 16] = rand::random();
    let plain =
        json!({"openId": "o_zhang", "nickName": "张三 ✓", "avatarUrl": "https://img.example/z.png",
        "watermark": {"appid": APP_ID, "timestamp": 1_700_000_000}})
        .to_string();
    if !crate::helpers::required::openssl() {
        return;
    }
    let data = openssl_encrypt(&plain, &hex::encode(key), &hex::encode(iv))
        .expect("openssl runs here, so it encrypts");
    let app = spawn_app().await;
    let (scene, mp_token) = scanned_with(&app, "o_zhang", None, &STANDARD.encode(key)).await;
    let res = confirm_encrypted(&app, &scene, &mp_token, &data, &STANDARD.encode(iv)).await;
    ok_json(res).await;
    let user = redeemed_user(&app, &scene).await;
    assert_eq!(user["nickname"], "张三 ✓");
}

#[tokio::test]
async fn plain_profile_wins_over_decrypted_data() {
    let app = spawn_app().await;
    let (scene, mp_token) =
        scanned_with(&app, "o_alice", Some("u_alice"), &fx("session_key")).await;
    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "encrypted_data": fx("user"), "iv": fx("iv"),
            "profile": {"nickname": "Chosen name"}}))
        .await;
    ok_json(res).await;
    let user = redeemed_user(&app, &scene).await;
    assert_eq!(user["nickname"], "Chosen name");
    assert_eq!(user["avatar_url"], "https://img.example/alice.png");
}

#[tokio::test]
async fn bad_profile_values_are_refused() {
    let app = spawn_app().await;
    let (scene, mp_token) = scanned_with(&app, "o_p", None, &fx("session_key")).await;
    for profile in [
        json!({"nickname": "x".repeat(65)}),
        json!({"nickname": "bell\u{7}"}),
        json!({"avatar_url": "javascript:alert(1)"}),
        json!({"avatar_url": format!("https://x.example/{}", "a".repeat(3000))}),
        json!({"nickname": 5}),
        json!({"unknown_field": "x"}),
    ] {
        let res = app
            .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "profile": profile}))
            .await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, 400, "{profile}: {text}");
        assert_eq!(app.state_of(&scene).await, "scanned");
    }
}

#[tokio::test]
async fn rescan_keeps_the_newest_session_key() {
    let app = spawn_app().await;
    // First scan with one key, then the same person scans again after a new
    // wx.login (WeChat gave a new key): data made with the new key decrypts.
    let (scene, mp_token) =
        scanned_with(&app, "o_alice", Some("u_alice"), &fx("other_session_key")).await;
    let code = unique("code");
    app.fake
        .add_code(&code, "o_alice", Some("u_alice"), &fx("session_key"));
    let again = ok_json(app.scan(&scene.id, &code).await).await;
    assert_eq!(again["mp_token"], mp_token.as_str());
    let res = confirm_encrypted(&app, &scene, &mp_token, &fx("user"), &fx("iv")).await;
    ok_json(res).await;
    assert_eq!(redeemed_user(&app, &scene).await["nickname"], "Alice");
}
