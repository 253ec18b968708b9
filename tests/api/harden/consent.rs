//! Phone numbers only with consent (SPEC v3): a client gets the number only
//! when the person shared it with that client, in this login or an earlier
//! one; a `phone_code` for a client that takes no numbers is refused before
//! WeChat is called.

use std::collections::HashMap;

use scanlogin::config::ClientSettings;
use serde_json::{Value, json};

use crate::helpers::fake_wechat::Api;
use crate::helpers::{
    CLIENT_ID, ORIGIN, PUBLIC_URL, Scene, TestApp, assert_problem, client, ok_json, spawn_app_with,
    unique,
};
use crate::oidc::{authorize, complete, page_data, pkce, token};

const SHOP: &str = "shop";
const SHOP_SECRET: &str = "shop-secret-0123456789";
const SHOP_ORIGIN: &str = "http://shop.test";
const BANK: &str = "bank";
const BANK_SECRET: &str = "bank-secret-0123456789";
const BANK_ORIGIN: &str = "http://bank.test";
const BANK_REDIRECT: &str = "https://bank.test/callback";
const NUMBER: &str = "13912345678";

/// Two clients that ask for phone numbers; `bank` also uses OpenID Connect.
async fn two_phone_clients() -> TestApp {
    spawn_app_with(|c| {
        c.settings(|s| {
            s.clients.push(ClientSettings {
                allowed_origins: vec![SHOP_ORIGIN.into()],
                phone: true,
                ..client(SHOP, "Shop", SHOP_SECRET)
            });
            s.clients.push(ClientSettings {
                allowed_origins: vec![BANK_ORIGIN.into()],
                redirect_uris: vec![BANK_REDIRECT.into()],
                phone: true,
                ..client(BANK, "Bank", BANK_SECRET)
            });
        });
    })
    .await
}

async fn scene_for(app: &TestApp, body: Value, origin: &str) -> Scene {
    let res = app.post_scene(&body, Some(origin)).await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("JSON");
    Scene {
        id: body["scene_id"].as_str().expect("scene_id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    }
}

/// `openid` confirms the scene in one step, sharing the number when
/// `phone_code` is given; the ticket.
async fn confirm(app: &TestApp, scene: &Scene, openid: &str, phone_code: Option<&str>) -> String {
    let mut body = json!({"scene_id": scene.id, "code": app.login_code(openid)});
    if let Some(pc) = phone_code {
        app.fake.add_phone_code(pc, NUMBER);
        body["phone_code"] = json!(pc);
    }
    ok_json(app.confirm(&body).await).await;
    let event = ok_json(app.events(scene, None, 0).await).await;
    event["ticket"].as_str().expect("ticket").to_owned()
}

async fn redeemed_user(app: &TestApp, client_id: &str, secret: &str, ticket: &str) -> Value {
    ok_json(app.redeem_as(client_id, secret, ticket).await).await["user"].clone()
}

#[tokio::test]
async fn a_number_shared_with_one_client_is_not_given_to_another() {
    let app = two_phone_clients().await;
    let openid = unique("o");
    // The person shares the number with the shop.
    let scene = scene_for(&app, json!({"client_id": SHOP}), SHOP_ORIGIN).await;
    let ticket = confirm(&app, &scene, &openid, Some(&unique("pc"))).await;
    let user = redeemed_user(&app, SHOP, SHOP_SECRET, &ticket).await;
    assert_eq!(user["phone_number"], NUMBER, "{user}");
    // Then logs in to the bank, declining to share it there.
    let scene = scene_for(&app, json!({"client_id": BANK}), BANK_ORIGIN).await;
    let ticket = confirm(&app, &scene, &openid, None).await;
    let user = redeemed_user(&app, BANK, BANK_SECRET, &ticket).await;
    assert!(user.get("phone_number").is_none(), "{user}");
    // Nor through OpenID Connect with the phone scope.
    let p = pkce();
    let ps: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", BANK),
        ("redirect_uri", BANK_REDIRECT),
        ("scope", "openid phone"),
        ("state", "s"),
        ("code_challenge", p.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let (data, _, _) = page_data(authorize(&app, &ps).await).await;
    let scene = scene_for(
        &app,
        json!({"client_id": BANK, "authorize_handle": data["handle"]}),
        PUBLIC_URL,
    )
    .await;
    let ticket = confirm(&app, &scene, &openid, None).await;
    let done =
        ok_json(complete(&app, &json!({"handle": data["handle"], "ticket": ticket})).await).await;
    let to = url::Url::parse(done["redirect_to"].as_str().expect("redirect_to")).expect("URL");
    let q: HashMap<String, String> = to.query_pairs().into_owned().collect();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", q["code"].as_str()),
        ("redirect_uri", BANK_REDIRECT),
        ("code_verifier", p.verifier.as_str()),
    ];
    let tokens = ok_json(token(&app, &form, Some((BANK, BANK_SECRET))).await).await;
    let claims = ok_json(
        app.http
            .get(app.url("/oauth2/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().expect("access_token"))
            .send()
            .await
            .expect("userinfo"),
    )
    .await;
    assert!(claims.get("phone_number").is_none(), "{claims}");
    assert!(!tokens.to_string().contains(NUMBER), "{tokens}");
    // The shop, shared with before, gets it again in a later login without
    // a phone_code (the consent is kept per user and client).
    let scene = scene_for(&app, json!({"client_id": SHOP}), SHOP_ORIGIN).await;
    let ticket = confirm(&app, &scene, &openid, None).await;
    let user = redeemed_user(&app, SHOP, SHOP_SECRET, &ticket).await;
    assert_eq!(user["phone_number"], NUMBER, "{user}");
    // Shared with the bank now, the bank gets it.
    let scene = scene_for(&app, json!({"client_id": BANK}), BANK_ORIGIN).await;
    let ticket = confirm(&app, &scene, &openid, Some(&unique("pc"))).await;
    let user = redeemed_user(&app, BANK, BANK_SECRET, &ticket).await;
    assert_eq!(user["phone_number"], NUMBER, "{user}");
}

#[tokio::test]
async fn a_phone_code_for_a_client_without_phone_is_refused_before_wechat() {
    let app = two_phone_clients().await;
    let scene = scene_for(&app, json!({"client_id": CLIENT_ID}), ORIGIN).await;
    let mp_token = app.scanned(&scene.id, &app.login_code(&unique("o"))).await;
    app.fake.add_phone_code("pc-nope", NUMBER);
    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token, "phone_code": "pc-nope"}))
        .await;
    let body = assert_problem(res, 400, "invalid_request").await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("phone_code")),
        "{body}"
    );
    assert_eq!(app.fake.calls(Api::PhoneNumber), 0, "WeChat was not called");
    // Nothing changed: the scene is still scanned and confirms without it.
    assert_eq!(app.state_of(&scene).await, "scanned");
    ok_json(app.confirm_token(&scene.id, &mp_token).await).await;
}
