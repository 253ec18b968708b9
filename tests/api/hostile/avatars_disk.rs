//! Avatars cannot fill the disk (issue 21, hole 4): a scene holds one
//! avatar (a second upload replaces the first), an avatar no user shows is
//! deleted once its scene is done with it (within an hour), and each
//! address has a byte budget.

use std::io::Cursor;
use std::time::Duration;

use entity::avatars;
use image::{ImageFormat, RgbaImage};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{PUBLIC_URL, TestApp, assert_problem, ok_json, spawn_app_with, unique};

use super::retry_after;

/// A `side` x `side` PNG of noise (which no encoder shrinks much).
fn noise_png(side: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let img = RgbaImage::from_fn(side, side, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let [a, b, c, _] = x.to_le_bytes();
        image::Rgba([a, b, c, 255])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .expect("encode");
    out
}

/// A scanned scene's mp token.
async fn mp_token(app: &TestApp) -> (String, String) {
    let scene = app.create_scene().await;
    let token = app
        .scanned(&scene.id, &app.login_code(&unique("o_disk")))
        .await;
    (scene.id, token)
}

async fn upload(app: &TestApp, token: &str, from: Option<&str>, png: Vec<u8>) -> reqwest::Response {
    let mut req = app
        .http
        .post(app.url("/api/v1/mp/avatar"))
        .header("Content-Type", "image/png")
        .bearer_auth(token)
        .body(png);
    if let Some(ip) = from {
        req = req.header("X-Forwarded-For", ip);
    }
    req.send().await.expect("POST avatar")
}

async fn uploaded(app: &TestApp, token: &str, png: Vec<u8>) -> String {
    let answer: Value = ok_json_201(upload(app, token, None, png).await).await;
    answer["avatar_url"]
        .as_str()
        .expect("avatar_url")
        .to_owned()
}

async fn ok_json_201(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 201);
    res.json().await.expect("JSON")
}

/// The status of `GET` of an avatar URL the hub handed out.
async fn fetch(app: &TestApp, url: &str) -> u16 {
    let path = url.strip_prefix(PUBLIC_URL).expect("under public_url");
    app.http
        .get(app.url(path))
        .send()
        .await
        .expect("GET avatar")
        .status()
        .as_u16()
}

async fn count(db: &DatabaseConnection) -> u64 {
    avatars::Entity::find().count(db).await.expect("count")
}

fn id_of(url: &str) -> String {
    url.rsplit('/').next().expect("id").to_owned()
}

#[tokio::test]
async fn a_second_upload_for_a_scene_replaces_the_first() {
    let app = spawn_app_with(|_| {}).await;
    let (_, token) = mp_token(&app).await;
    let urls = [
        uploaded(&app, &token, noise_png(8, 1)).await,
        uploaded(&app, &token, noise_png(8, 2)).await,
        uploaded(&app, &token, noise_png(8, 3)).await,
    ];
    let db = app.db().await;
    assert_eq!(count(&db).await, 1, "one avatar per scene");
    assert_eq!(fetch(&app, &urls[0]).await, 404);
    assert_eq!(fetch(&app, &urls[1]).await, 404);
    assert_eq!(fetch(&app, &urls[2]).await, 200);
    // Another scene has its own.
    let (_, other) = mp_token(&app).await;
    uploaded(&app, &other, noise_png(8, 4)).await;
    assert_eq!(count(&db).await, 2);
    let _ = db.close().await;
}

#[tokio::test]
async fn avatars_no_user_shows_are_deleted_within_an_hour() {
    let app = spawn_app_with(|cfg| {
        cfg.housekeeping_secs = 1;
        // The hub's default retention: old scenes are kept a week.
        cfg.settings(|s| s.housekeeping.retention_secs = 7 * 24 * 3600);
    })
    .await;
    let (shown_scene, shown_token) = mp_token(&app).await;
    let shown = uploaded(&app, &shown_token, noise_png(8, 5)).await;
    ok_json(
        app.confirm(&json!({"scene_id": shown_scene, "mp_token": shown_token,
            "profile": {"avatar_url": shown}}))
            .await,
    )
    .await;
    let (dropped_scene, dropped_token) = mp_token(&app).await;
    let dropped = uploaded(&app, &dropped_token, noise_png(8, 6)).await;
    ok_json(
        app.cancel(&json!({"scene_id": dropped_scene, "mp_token": dropped_token}))
            .await,
    )
    .await;
    // An hour and more passes: both were uploaded two hours ago.
    let db = app.db().await;
    let two_hours_ago = chrono::Utc::now().timestamp_millis() - 2 * 3600 * 1000;
    avatars::Entity::update_many()
        .col_expr(avatars::Column::CreatedAt, Expr::value(two_hours_ago))
        .col_expr(avatars::Column::KeepUntil, Expr::value(two_hours_ago))
        .exec(&db)
        .await
        .expect("age avatars");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let left = avatars::Entity::find()
            .filter(avatars::Column::Id.eq(id_of(&dropped)))
            .count(&db)
            .await
            .expect("count");
        if left == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the avatar no user shows is still kept"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(fetch(&app, &dropped).await, 404);
    assert_eq!(fetch(&app, &shown).await, 200, "the user's avatar is kept");
    let _ = db.close().await;
}

#[tokio::test]
async fn each_address_has_an_avatar_byte_budget() {
    let png = noise_png(64, 7);
    let kept = scanlogin::avatars::reencode("image/png", &png).expect("re-encodes");
    let cost = png.len().max(kept.len());
    let budget = 3 * cost + cost / 2;
    let app = spawn_app_with(move |cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.rate_limit.avatar_bytes_per_hour = u32::try_from(budget).expect("small");
    })
    .await;
    let (_, token) = mp_token(&app).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let res = upload(&app, &token, Some("198.51.100.20"), png.clone()).await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert!(retry_after(&res) > 60, "an hour's budget refills slowly");
            assert_problem(res, 429, "rate_limited").await;
        }
    }
    assert_eq!(statuses, [201, 201, 201, 429, 429, 429]);
    // Another address has its own budget.
    let res = upload(&app, &token, Some("198.51.100.21"), png.clone()).await;
    assert_eq!(res.status(), 201);
}
