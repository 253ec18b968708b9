//! The person's account (SPEC v3 "The person's account"): what the hub
//! holds about a person (`POST /api/v1/mp/account`), deleting all of it
//! (`POST /api/v1/mp/account/delete`) and the operator's `scanlogin users
//! show|delete`, run as the real binary against the test hub's database.
//! The `user.deleted` webhook is tested with the webhook receiver
//! (`webhooks/user_deleted.rs`).

mod cli;
mod race;

use std::io::Cursor;

use entity::{
    avatars, client_logins, identities, login_history, oidc_access_tokens, oidc_grants,
    phone_consents, scenes, tickets, users,
};
use reqwest::Response;
use scanlogin::config::ClientSettings;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{
    APP_ID, CLIENT_ID, ORIGIN, OTHER_CLIENT_ID, OTHER_ORIGIN, Scene, TestApp, assert_problem,
    client, ok_json, spawn_app_with, unique,
};
use crate::oidc::{REDIRECT, exchange, login_as, params, pkce};

const PHONE_CLIENT: &str = "phone-site";
const PHONE_ORIGIN: &str = "http://phone.test";
const PHONE_NUMBER: &str = "+8613800138000";

/// A hub with a third client that asks for phone numbers, OIDC on `site`,
/// and `days` of login history.
async fn hub(days: u64) -> TestApp {
    spawn_app_with(move |c| {
        c.redirect_uris = vec![REDIRECT.into()];
        c.settings(move |s| {
            s.housekeeping.login_history_days = days;
            s.clients.push(ClientSettings {
                allowed_origins: vec![PHONE_ORIGIN.into()],
                phone: true,
                ..client(PHONE_CLIENT, "Phone site", "phone-site-secret-0123456789")
            });
        });
    })
    .await
}

fn origin_of(client_id: &str) -> &'static str {
    match client_id {
        CLIENT_ID => ORIGIN,
        OTHER_CLIENT_ID => OTHER_ORIGIN,
        _ => PHONE_ORIGIN,
    }
}

async fn scene_for(app: &TestApp, client_id: &str, agent: &str) -> Scene {
    let res = app
        .http
        .post(app.url("/api/v1/scenes"))
        .header("Origin", origin_of(client_id))
        .header("User-Agent", agent)
        .json(&json!({"client_id": client_id}))
        .send()
        .await
        .expect("POST scenes");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("scene");
    Scene {
        id: body["scene_id"].as_str().expect("scene_id").to_owned(),
        browser_token: body["browser_token"].as_str().expect("token").to_owned(),
        body,
    }
}

/// `openid` logs in to `client_id` in one step (with `extra` fields on the
/// confirm); the user id and the scene (its ticket not redeemed).
async fn log_in(
    app: &TestApp,
    client_id: &str,
    openid: &str,
    agent: &str,
    extra: Value,
) -> (String, Scene) {
    let scene = scene_for(app, client_id, agent).await;
    let mut body = json!({"scene_id": scene.id, "code": app.login_code(openid),
        "profile": {"nickname": "Alice"}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let confirmed = ok_json(app.confirm(&body).await).await;
    assert_eq!(confirmed["state"], "confirmed", "{confirmed}");
    let user = confirmed["user_id"].as_str().expect("user_id").to_owned();
    (user, scene)
}

/// `POST /api/v1/mp/account` with this code.
async fn account_with(app: &TestApp, code: &str) -> Response {
    app.post_json("/api/v1/mp/account", &json!({"code": code}))
        .await
}

/// `POST /api/v1/mp/account` with a fresh code of `openid`.
async fn account(app: &TestApp, openid: &str) -> Response {
    account_with(app, &app.login_code(openid)).await
}

/// `POST /api/v1/mp/account/delete` with this code.
async fn delete_with(app: &TestApp, code: &str) -> Response {
    app.post_json("/api/v1/mp/account/delete", &json!({"code": code}))
        .await
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {v}"))
}

/// How many rows each table holds for `user_id`.
async fn rows_of(db: &DatabaseConnection, user_id: &str) -> Vec<(&'static str, u64)> {
    let grants: Vec<String> = oidc_grants::Entity::find()
        .filter(oidc_grants::Column::UserId.eq(user_id))
        .all(db)
        .await
        .expect("grants")
        .into_iter()
        .map(|g| g.id_hash)
        .collect();
    vec![
        (
            "users",
            users::Entity::find_by_id(user_id.to_owned())
                .count(db)
                .await
                .expect("users"),
        ),
        (
            "identities",
            identities::Entity::find()
                .filter(identities::Column::UserId.eq(user_id))
                .count(db)
                .await
                .expect("identities"),
        ),
        (
            "login_history",
            login_history::Entity::find()
                .filter(login_history::Column::UserId.eq(user_id))
                .count(db)
                .await
                .expect("login_history"),
        ),
        (
            "client_logins",
            client_logins::Entity::find()
                .filter(client_logins::Column::UserId.eq(user_id))
                .count(db)
                .await
                .expect("client_logins"),
        ),
        (
            "phone_consents",
            phone_consents::Entity::find()
                .filter(phone_consents::Column::UserId.eq(user_id))
                .count(db)
                .await
                .expect("phone_consents"),
        ),
        (
            "tickets",
            tickets::Entity::find()
                .filter(tickets::Column::UserId.eq(user_id))
                .count(db)
                .await
                .expect("tickets"),
        ),
        ("oidc_grants", grants.len() as u64),
        (
            "oidc_access_tokens",
            oidc_access_tokens::Entity::find()
                .filter(oidc_access_tokens::Column::GrantId.is_in(grants))
                .count(db)
                .await
                .expect("tokens"),
        ),
        (
            "scenes",
            scenes::Entity::find()
                .filter(scenes::Column::UserId.eq(user_id))
                .count(db)
                .await
                .expect("scenes"),
        ),
    ]
}

/// A PNG avatar uploaded on a scanned scene of `openid` for `client_id`,
/// then confirmed with it: (user id, avatar URL).
async fn log_in_with_avatar(app: &TestApp, client_id: &str, openid: &str) -> (String, String) {
    let scene = scene_for(app, client_id, "Avatar/1").await;
    let token = app.scanned(&scene.id, &app.login_code(openid)).await;
    let mut png = Vec::new();
    image::DynamicImage::new_rgba8(8, 8)
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("PNG");
    let res = app
        .http
        .post(app.url("/api/v1/mp/avatar"))
        .header("Content-Type", "image/png")
        .bearer_auth(&token)
        .body(png)
        .send()
        .await
        .expect("POST avatar");
    assert_eq!(res.status(), 201);
    let url = res.json::<Value>().await.expect("JSON")["avatar_url"]
        .as_str()
        .expect("avatar_url")
        .to_owned();
    let confirmed = ok_json(
        app.confirm(&json!({"scene_id": scene.id, "mp_token": token,
            "profile": {"nickname": "Alice", "avatar_url": url}}))
            .await,
    )
    .await;
    let user = confirmed["user_id"].as_str().expect("user_id").to_owned();
    (user, url)
}

/// The path of an avatar URL the hub handed out (`{public_url}/api/v1/avatars/{id}`).
fn avatar_path(url: &str) -> String {
    let at = url.find("/api/v1/avatars/").expect("an avatar URL");
    url[at..].to_owned()
}

async fn ticket_of(app: &TestApp, scene: &Scene) -> String {
    let body = ok_json(app.events(scene, None, 0).await).await;
    assert_eq!(body["state"], "confirmed", "{body}");
    body["ticket"].as_str().expect("ticket").to_owned()
}

#[tokio::test]
async fn the_account_shows_profile_clients_and_logins_newest_first() {
    let app = hub(90).await;
    let openid = unique("o_acc");
    let (user, _) = log_in(&app, CLIENT_ID, &openid, "First/1", json!({})).await;
    let phone_code = unique("phone");
    app.fake.add_phone_code(&phone_code, PHONE_NUMBER);
    let (again, _) = log_in(
        &app,
        PHONE_CLIENT,
        &openid,
        "Phone/2",
        json!({"phone_code": phone_code}),
    )
    .await;
    let (third, _) = log_in(&app, CLIENT_ID, &openid, "Third/3", json!({})).await;
    assert_eq!((&again, &third), (&user, &user), "one person, one user");
    // Someone else's logins are not shown.
    log_in(
        &app,
        OTHER_CLIENT_ID,
        &unique("o_else"),
        "Else/1",
        json!({}),
    )
    .await;

    let res = account(&app, &openid).await;
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body = ok_json(res).await;
    assert_eq!(keys(&body), ["clients", "logins", "user"], "{body}");
    let u = &body["user"];
    assert_eq!(
        keys(u),
        [
            "avatar_url",
            "created_at",
            "id",
            "identities",
            "nickname",
            "phone_number_kept",
            "unionid"
        ]
    );
    assert_eq!(u["id"], user.as_str());
    assert_eq!(u["nickname"], "Alice");
    assert_eq!(u["unionid"], Value::Null);
    assert_eq!(u["avatar_url"], Value::Null);
    assert_eq!(
        u["identities"],
        json!([{"app_id": APP_ID, "openid": openid}])
    );
    assert_eq!(u["phone_number_kept"], true);
    assert!(!body.to_string().contains(PHONE_NUMBER), "never the number");
    let created = time(&u["created_at"]);

    let clients = body["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 2, "{body}");
    for c in clients {
        assert_eq!(
            keys(c),
            [
                "client_id",
                "first_login_at",
                "last_login_at",
                "name",
                "phone_shared"
            ]
        );
    }
    let (site, phone) = (&clients[0], &clients[1]);
    assert_eq!(site["client_id"], CLIENT_ID, "first logged in to first");
    assert_eq!(site["name"], "Test site");
    assert_eq!(site["phone_shared"], false);
    assert!(time(&site["first_login_at"]) < time(&site["last_login_at"]));
    assert!(time(&site["first_login_at"]) >= created);
    assert_eq!(phone["client_id"], PHONE_CLIENT);
    assert_eq!(phone["name"], "Phone site");
    assert_eq!(phone["phone_shared"], true);
    assert_eq!(phone["first_login_at"], phone["last_login_at"]);

    let logins = body["logins"].as_array().expect("logins");
    let agents: Vec<&str> = logins
        .iter()
        .map(|l| l["user_agent"].as_str().expect("user_agent"))
        .collect();
    assert_eq!(agents, ["Third/3", "Phone/2", "First/1"], "newest first");
    assert_eq!(keys(&logins[0]), ["at", "client_id", "ip", "user_agent"]);
    assert_eq!(logins[0]["client_id"], CLIENT_ID);
    assert_eq!(logins[0]["ip"], "127.0.0.1");
    assert_eq!(logins[0]["at"], site["last_login_at"]);
    assert_eq!(logins[2]["at"], site["first_login_at"]);
}

#[tokio::test]
async fn the_account_lists_at_most_100_logins_and_clients_without_any_history() {
    let app = hub(0).await;
    let openid = unique("o_zero");
    let (user, _) = log_in(&app, CLIENT_ID, &openid, "Zero/1", json!({})).await;
    let body = ok_json(account(&app, &openid).await).await;
    assert_eq!(body["user"]["id"], user.as_str());
    assert_eq!(body["logins"], json!([]), "0 days keeps no login");
    let clients = body["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "{body}");
    assert_eq!(clients[0]["client_id"], CLIENT_ID);

    // With a history, the newest 100 of 101.
    let app = hub(90).await;
    let openid = unique("o_many");
    let (user, _) = log_in(&app, CLIENT_ID, &openid, "Many/0", json!({})).await;
    let db = app.db().await;
    let now = chrono::Utc::now().timestamp_millis();
    let rows = (1..=100).map(|i| login_history::ActiveModel {
        scene_id: sea_orm::Set(format!("{:032x}", i)),
        user_id: sea_orm::Set(user.clone()),
        client_id: sea_orm::Set(CLIENT_ID.into()),
        at: sea_orm::Set(now - 1_000_000 + i),
        ip: sea_orm::Set("192.0.2.1".into()),
        user_agent: sea_orm::Set(format!("Old/{i}")),
        country: sea_orm::Set(None),
        region: sea_orm::Set(None),
        city: sea_orm::Set(None),
    });
    login_history::Entity::insert_many(rows)
        .exec(&db)
        .await
        .expect("older logins");
    let body = ok_json(account(&app, &openid).await).await;
    let logins = body["logins"].as_array().expect("logins");
    assert_eq!(logins.len(), 100);
    assert_eq!(logins[0]["user_agent"], "Many/0");
    assert_eq!(logins[1]["user_agent"], "Old/100");
    assert_eq!(logins[99]["user_agent"], "Old/2", "the oldest is left out");
}

#[tokio::test]
async fn a_person_the_hub_does_not_know_gets_404_user_not_found() {
    let app = hub(90).await;
    let problem = assert_problem(
        account(&app, &unique("o_nobody")).await,
        404,
        "user_not_found",
    )
    .await;
    assert_eq!(problem["type"], "urn:scanlogin:error:user_not_found");
    assert_eq!(problem["title"], "Not Found");
    let code = app.login_code(&unique("o_nobody"));
    assert_problem(delete_with(&app, &code).await, 404, "user_not_found").await;
    let db = app.db().await;
    assert_eq!(
        users::Entity::find().count(&db).await.expect("users"),
        0,
        "no user made"
    );
}

#[tokio::test]
async fn deleting_removes_everything_and_the_next_login_is_a_new_user() {
    let app = hub(90).await;
    let openid = unique("o_del");
    // A ticket issued and not redeemed, an OIDC access token, a phone
    // number shared, an uploaded avatar.
    let (user, scene) = log_in(&app, CLIENT_ID, &openid, "Del/1", json!({})).await;
    let ticket = ticket_of(&app, &scene).await;
    let p = pkce();
    let (q, oidc_user) = login_as(&app, &params(&p, "st", "nonce"), &openid).await;
    assert_eq!(oidc_user, user);
    let tokens = ok_json(exchange(&app, &q["code"], &p).await).await;
    let access = tokens["access_token"].as_str().expect("access_token");
    let userinfo = |token: String| {
        let app = &app;
        async move {
            app.http
                .get(app.url("/oauth2/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .expect("GET userinfo")
        }
    };
    assert_eq!(userinfo(access.to_owned()).await.status(), 200);
    let phone_code = unique("phone");
    app.fake.add_phone_code(&phone_code, PHONE_NUMBER);
    log_in(
        &app,
        PHONE_CLIENT,
        &openid,
        "Phone/1",
        json!({"phone_code": phone_code}),
    )
    .await;
    let (avatar_user, avatar_url) = log_in_with_avatar(&app, OTHER_CLIENT_ID, &openid).await;
    assert_eq!(avatar_user, user);
    assert_eq!(
        app.http
            .get(app.url(&avatar_path(&avatar_url)))
            .send()
            .await
            .expect("avatar")
            .status(),
        200
    );
    // Someone else, untouched by the deletion.
    let bystander = unique("o_by");
    let (by_user, by_scene) = log_in(&app, CLIENT_ID, &bystander, "By/1", json!({})).await;

    let db = app.db().await;
    let before = rows_of(&db, &user).await;
    for (table, n) in &before {
        assert!(*n > 0, "{table} holds nothing to delete: {before:?}");
    }

    let deleted = ok_json(delete_with(&app, &app.login_code(&openid)).await).await;
    assert_eq!(deleted, json!({"deleted": true, "user_id": user}));

    let after = rows_of(&db, &user).await;
    assert!(after.iter().all(|(_, n)| *n == 0), "left behind: {after:?}");
    assert_problem(app.redeem(&ticket).await, 400, "invalid_ticket").await;
    let res = userinfo(access.to_owned()).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    assert_eq!(
        app.http
            .get(app.url(&avatar_path(&avatar_url)))
            .send()
            .await
            .expect("avatar")
            .status(),
        404,
        "the avatar is gone"
    );
    assert_eq!(
        avatars::Entity::find().count(&db).await.expect("avatars"),
        0
    );
    assert_problem(account(&app, &openid).await, 404, "user_not_found").await;

    // The bystander keeps everything.
    let theirs = ok_json(account(&app, &bystander).await).await;
    assert_eq!(theirs["user"]["id"], by_user.as_str());
    assert_eq!(theirs["logins"].as_array().map(Vec::len), Some(1));
    let by_ticket = ticket_of(&app, &by_scene).await;
    assert_eq!(app.redeem(&by_ticket).await.status(), 200);

    // The same person again: a new user, with nothing of the old one.
    let (new_user, _) = log_in(&app, CLIENT_ID, &openid, "Again/1", json!({})).await;
    assert_ne!(new_user, user, "the id is never given again");
    let fresh = ok_json(account(&app, &openid).await).await;
    assert_eq!(fresh["user"]["id"], new_user.as_str());
    assert_eq!(fresh["user"]["phone_number_kept"], false);
    assert_eq!(fresh["user"]["avatar_url"], Value::Null);
    assert_eq!(
        fresh["clients"].as_array().map(Vec::len),
        Some(1),
        "{fresh}"
    );
    let logins = fresh["logins"].as_array().expect("logins");
    assert_eq!(logins.len(), 1, "{fresh}");
    assert_eq!(logins[0]["user_agent"], "Again/1");
}

#[tokio::test]
async fn a_bad_or_used_code_is_refused_and_changes_nothing() {
    let app = hub(90).await;
    let openid = unique("o_bad");
    let (user, scene) = log_in(&app, CLIENT_ID, &openid, "Bad/1", json!({})).await;
    let db = app.db().await;
    let before = rows_of(&db, &user).await;

    // WeChat does not know the code.
    let problem = assert_problem(
        delete_with(&app, "not-a-real-code").await,
        502,
        "wechat_error",
    )
    .await;
    assert_eq!(problem["errcode"], 40029);
    assert_problem(
        account_with(&app, "not-a-real-code").await,
        502,
        "wechat_error",
    )
    .await;
    // No code, an empty one, an unknown app.
    assert_problem(
        app.post_json("/api/v1/mp/account/delete", &json!({})).await,
        400,
        "invalid_request",
    )
    .await;
    assert_problem(delete_with(&app, "").await, 400, "invalid_request").await;
    let code = app.login_code(&openid);
    assert_problem(
        app.post_json(
            "/api/v1/mp/account/delete",
            &json!({"code": code, "app_id": "wxnope"}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    // A code already used for a scene.
    let other = scene_for(&app, CLIENT_ID, "Used/1").await;
    let used = app.login_code(&openid);
    app.scanned(&other.id, &used).await;
    let problem = assert_problem(delete_with(&app, &used).await, 400, "invalid_request").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("wx.login")),
        "{problem}"
    );
    // A code used to show the account cannot delete it.
    let shown = app.login_code(&openid);
    assert_eq!(account_with(&app, &shown).await.status(), 200);
    assert_eq!(
        account_with(&app, &shown).await.status(),
        200,
        "a retry is answered again"
    );
    assert_problem(delete_with(&app, &shown).await, 400, "invalid_request").await;

    assert_eq!(rows_of(&db, &user).await, before, "nothing changed");
    let ticket = ticket_of(&app, &scene).await;
    assert_eq!(
        app.redeem(&ticket).await.status(),
        200,
        "the ticket still works"
    );

    // A deletion's code, presented again, finds nobody left.
    let code = app.login_code(&openid);
    assert_eq!(delete_with(&app, &code).await.status(), 200);
    assert_problem(delete_with(&app, &code).await, 404, "user_not_found").await;
}
