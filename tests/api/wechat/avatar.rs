//! Avatars: `POST /api/v1/mp/avatar` with the mp token of a scanned scene,
//! checked before decoding, re-encoded, served with long cache headers and
//! purged by housekeeping once no user shows them.

use std::io::Cursor;
use std::time::{Duration, Instant};

use entity::{avatars, users};
use image::{ImageFormat, RgbaImage};
use reqwest::Response;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{
    PUBLIC_URL, TestApp, assert_problem, ok_json, spawn_app, spawn_app_with, unique,
};

/// An image of `w` x `h` pixels in `format`.
fn image_bytes(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 99, 255])
    });
    let mut out = Vec::new();
    let img = if format == ImageFormat::Jpeg {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(img).to_rgb8())
    } else {
        image::DynamicImage::ImageRgba8(img)
    };
    img.write_to(&mut Cursor::new(&mut out), format)
        .expect("encode");
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A valid-looking PNG of a few dozen bytes declaring 50,000 x 50,000 RGBA
/// pixels (10 GB decoded).
fn decompression_bomb() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    png.extend(chunk(b"IHDR", &ihdr));
    // zlib stream of a few zero bytes: the start of the pixel data.
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

async fn upload(app: &TestApp, token: Option<&str>, content_type: &str, body: Vec<u8>) -> Response {
    let mut req = app
        .http
        .post(app.url("/api/v1/mp/avatar"))
        .header("Content-Type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("POST avatar")
}

/// A scanned scene's mp token.
async fn mp_token(app: &TestApp) -> (crate::helpers::Scene, String) {
    let scene = app.create_scene().await;
    let token = app
        .scanned(&scene.id, &app.login_code(&unique("o_av")))
        .await;
    (scene, token)
}

/// The hub's path of an avatar URL it handed out.
fn local(app: &TestApp, avatar_url: &str) -> String {
    let path = avatar_url
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("{avatar_url} is not under public_url"));
    assert!(path.starts_with("/api/v1/avatars/"), "{avatar_url}");
    app.url(path)
}

#[tokio::test]
async fn uploaded_avatar_is_reencoded_and_served_with_long_cache_headers() {
    let app = spawn_app().await;
    let (scene, token) = mp_token(&app).await;
    for (format, mime) in [
        (ImageFormat::Png, "image/png"),
        (ImageFormat::Jpeg, "image/jpeg"),
        (ImageFormat::WebP, "image/webp"),
    ] {
        let res = upload(&app, Some(&token), mime, image_bytes(600, 400, format)).await;
        let status = res.status();
        let body: serde_json::Value = res.json().await.expect("JSON");
        assert_eq!(status, 201, "{mime}: {body}");
        let url = body["avatar_url"].as_str().expect("avatar_url");
        let res = app
            .http
            .get(local(&app, url))
            .send()
            .await
            .expect("GET avatar");
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/png");
        assert_eq!(
            res.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
        let bytes = res.bytes().await.expect("bytes");
        let served = image::load_from_memory_with_format(&bytes, ImageFormat::Png)
            .expect("served bytes are a PNG");
        // Shrunk to fit 256 x 256, keeping the shape.
        assert_eq!((served.width(), served.height()), (256, 171), "{mime}");
    }
    // A small image keeps its size; the URL goes into the confirm's profile.
    let res = upload(
        &app,
        Some(&token),
        "image/png",
        image_bytes(40, 30, ImageFormat::Png),
    )
    .await;
    assert_eq!(res.status(), 201);
    let url = res.json::<serde_json::Value>().await.expect("JSON")["avatar_url"]
        .as_str()
        .expect("url")
        .to_owned();
    let bytes = app
        .http
        .get(local(&app, &url))
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("bytes");
    let served = image::load_from_memory(&bytes).expect("PNG");
    assert_eq!((served.width(), served.height()), (40, 30));
    let confirmed = ok_json(
        app.confirm(
            &json!({"scene_id": scene.id, "mp_token": token, "profile": {"avatar_url": url}}),
        )
        .await,
    )
    .await;
    let event = ok_json(app.events(&scene, None, 0).await).await;
    assert_eq!(event["user"]["avatar_url"], url.as_str());
    let db = app.db().await;
    let user =
        users::Entity::find_by_id(confirmed["user_id"].as_str().expect("user_id").to_owned())
            .one(&db)
            .await
            .expect("query")
            .expect("user");
    assert_eq!(
        user.avatar_id.as_deref(),
        url.rsplit('/').next(),
        "the user names the avatar, so housekeeping keeps it"
    );
    // An unknown id is a 404 problem.
    assert_problem(
        app.http
            .get(app.url("/api/v1/avatars/0123456789abcdef0123456789abcdef"))
            .send()
            .await
            .expect("GET"),
        404,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn avatar_upload_needs_the_token_of_a_scanned_scene() {
    let app = spawn_app().await;
    let png = image_bytes(10, 10, ImageFormat::Png);
    let body = assert_problem(
        upload(&app, None, "image/png", png.clone()).await,
        401,
        "invalid_token",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Bearer")),
        "{body}"
    );
    assert_problem(
        upload(&app, Some("not-a-token"), "image/png", png.clone()).await,
        401,
        "invalid_token",
    )
    .await;
    // A token whose scene was confirmed is spent.
    let (scene, token) = mp_token(&app).await;
    ok_json(app.confirm_token(&scene.id, &token).await).await;
    assert_problem(
        upload(&app, Some(&token), "image/png", png).await,
        401,
        "invalid_token",
    )
    .await;
    let db = app.db().await;
    assert_eq!(avatars::Entity::find().count(&db).await.expect("count"), 0);
}

#[tokio::test]
async fn bad_avatar_bodies_are_refused_without_storing_anything() {
    let app = spawn_app().await;
    let (_, token) = mp_token(&app).await;
    // Not an image.
    let body = assert_problem(
        upload(
            &app,
            Some(&token),
            "image/png",
            b"hello, not a picture".to_vec(),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("PNG")),
        "{body}"
    );
    // A JPEG declared as PNG does not decode as PNG.
    assert_problem(
        upload(
            &app,
            Some(&token),
            "image/png",
            image_bytes(20, 20, ImageFormat::Jpeg),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    // A type that is not an image we take.
    assert_problem(
        upload(&app, Some(&token), "image/svg+xml", b"<svg/>".to_vec()).await,
        415,
        "invalid_request",
    )
    .await;
    // An empty body.
    assert_problem(
        upload(&app, Some(&token), "image/png", Vec::new()).await,
        400,
        "invalid_request",
    )
    .await;
    // 2 MiB: 413.
    assert_problem(
        upload(&app, Some(&token), "image/png", vec![0u8; 2 * 1024 * 1024]).await,
        413,
        "invalid_request",
    )
    .await;
    // Without a Content-Length (chunked), just past the limit: still 413.
    let piece = "A".repeat(64 * 1024);
    let mut request = format!(
        "POST /api/v1/mp/avatar HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: image/png\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    for _ in 0..17 {
        request.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
    }
    request.push_str("0\r\n\r\n");
    let (status, body) = app.raw_http(&request).await;
    assert_eq!(status, 413, "{body}");
    let db = app.db().await;
    assert_eq!(avatars::Entity::find().count(&db).await.expect("count"), 0);
}

#[tokio::test]
async fn decompression_bomb_is_refused_from_its_header() {
    let app = spawn_app().await;
    let (_, token) = mp_token(&app).await;
    let bomb = decompression_bomb();
    assert!(bomb.len() < 100, "{} bytes", bomb.len());
    let started = Instant::now();
    let body = assert_problem(
        upload(&app, Some(&token), "image/png", bomb).await,
        400,
        "invalid_request",
    )
    .await;
    // Decoding it would allocate 10 GB and take long; the header check answers
    // at once (a generous bound for a loaded machine).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("50000 x 50000")),
        "{body}"
    );
    let db = app.db().await;
    assert_eq!(avatars::Entity::find().count(&db).await.expect("count"), 0);
}

#[tokio::test]
async fn housekeeping_purges_avatars_no_user_shows() {
    let app = spawn_app_with(|c| c.housekeeping_secs = 1).await;
    let (scene, token) = mp_token(&app).await;
    // A scene holds one avatar (a second upload replaces the first), so the
    // dropped one comes from a second scanned scene.
    let (_, dropped_token) = mp_token(&app).await;
    let mut urls = Vec::new();
    for t in [&token, &dropped_token] {
        let res = upload(
            &app,
            Some(t),
            "image/png",
            image_bytes(8, 8, ImageFormat::Png),
        )
        .await;
        assert_eq!(res.status(), 201);
        let v: serde_json::Value = res.json().await.expect("JSON");
        urls.push(v["avatar_url"].as_str().expect("url").to_owned());
    }
    // The first is shown by the user; the second was uploaded and dropped.
    ok_json(
        app.confirm(
            &json!({"scene_id": scene.id, "mp_token": token, "profile": {"avatar_url": urls[0]}}),
        )
        .await,
    )
    .await;
    let db = app.db().await;
    let two_hours_ago = chrono::Utc::now().timestamp_millis() - 2 * 3600 * 1000;
    avatars::Entity::update_many()
        .col_expr(avatars::Column::CreatedAt, Expr::value(two_hours_ago))
        .exec(&db)
        .await
        .expect("age avatars");
    let id = |u: &str| u.rsplit('/').next().expect("id").to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let dropped = avatars::Entity::find()
            .filter(avatars::Column::Id.eq(id(&urls[1])))
            .count(&db)
            .await
            .expect("count");
        if dropped == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unused avatar is still there"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kept = avatars::Entity::find()
        .filter(avatars::Column::Id.eq(id(&urls[0])))
        .count(&db)
        .await
        .expect("count");
    assert_eq!(kept, 1, "the user's avatar is kept");
    assert_eq!(
        app.http
            .get(local(&app, &urls[0]))
            .send()
            .await
            .expect("GET")
            .status(),
        200
    );
}

#[tokio::test]
async fn avatar_uploads_share_the_mini_program_rate_limit() {
    let app = spawn_app_with(|c| c.rate_limit.mp_per_minute = 5).await;
    let (_, token) = mp_token(&app).await; // the scan took one of the five
    let png = image_bytes(4, 4, ImageFormat::Png);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let res = upload(&app, Some(&token), "image/png", png.clone()).await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert_problem(res, 429, "rate_limited").await;
        }
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        6,
        "{statuses:?}"
    );
    // One scene holds one avatar: each upload replaced the one before.
    let db = app.db().await;
    assert_eq!(avatars::Entity::find().count(&db).await.expect("count"), 1);
}

/// At most two avatars decode at once per node; an upload that finds both
/// decoding slots taken waits for one (10 s), is refused with a 503 problem
/// and stores nothing, and goes through once a slot is free. The test holds
/// the slots itself (`TestApp::avatar_decode_slots`): a real decode of any
/// image the limits let in takes milliseconds to seconds depending on the
/// machine, and a slot is taken only once the whole body has arrived, so no
/// upload can be made to keep one for the 10 s the third one waits.
#[tokio::test]
async fn an_upload_finding_both_decoding_slots_taken_is_refused_as_busy() {
    let app = spawn_app().await;
    let (scene, token) = mp_token(&app).await;
    let slots = app.avatar_decode_slots.clone();
    let png = image_bytes(8, 8, ImageFormat::Png);
    let db = app.db().await;
    let stored = || async {
        avatars::Entity::find()
            .filter(avatars::Column::SceneId.eq(scene.id.as_str()))
            .count(&db)
            .await
            .expect("count")
    };

    // One slot taken: the other still decodes.
    let first = slots.clone().try_acquire_owned().expect("a free slot");
    let res = upload(&app, Some(&token), "image/png", png.clone()).await;
    assert_eq!(res.status(), 201);
    assert_eq!(stored().await, 1);

    // Both taken (and no third): the upload waits, then is refused as busy.
    let second = slots
        .clone()
        .try_acquire_owned()
        .expect("a second free slot");
    assert_eq!(slots.available_permits(), 0, "two decoding slots, not more");
    let started = Instant::now();
    let res = upload(&app, Some(&token), "image/png", png.clone()).await;
    let waited = started.elapsed();
    let retry_after = res.headers().get("retry-after").cloned();
    let body = assert_problem(res, 503, "unavailable").await;
    assert!(
        waited >= Duration::from_secs(10),
        "refused after {waited:?}"
    );
    assert_eq!(retry_after.as_ref().map(|v| v.as_bytes()), Some(&b"5"[..]));
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("retry")),
        "{body}"
    );
    // The first upload is still the scene's avatar.
    assert_eq!(stored().await, 1);
    let before = avatars::Entity::find()
        .filter(avatars::Column::SceneId.eq(scene.id.as_str()))
        .one(&db)
        .await
        .expect("query")
        .expect("the first avatar");

    // A slot freed: the same upload goes through and replaces it.
    drop(first);
    let res = upload(&app, Some(&token), "image/png", png).await;
    assert_eq!(res.status(), 201);
    let url = res.json::<serde_json::Value>().await.expect("JSON")["avatar_url"]
        .as_str()
        .expect("avatar_url")
        .to_owned();
    let after = avatars::Entity::find()
        .filter(avatars::Column::SceneId.eq(scene.id.as_str()))
        .one(&db)
        .await
        .expect("query")
        .expect("the new avatar");
    assert_ne!(after.id, before.id);
    assert_eq!(url.rsplit('/').next(), Some(after.id.as_str()));
    drop(second);
}
