//! The code image under the hub's origin (issue 21, hole 9): only PNG or
//! JPEG is served, with `nosniff`; whatever else WeChat (or anyone between)
//! answers is 502 `wechat_error`, never passed through to the browser.

use entity::scene_codes;
use sea_orm::{ActiveValue::Set, EntityTrait};

use crate::helpers::fake_wechat::{Api, Fault};
use crate::helpers::{assert_problem, spawn_app};

const SVG: &[u8] = br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.cookie)"/>"#;
const HTML: &[u8] = b"<html><script>alert(document.cookie)</script></html>";

#[tokio::test]
async fn only_png_or_jpeg_from_wechat_is_served() {
    let app = spawn_app().await;
    for (content_type, body) in [
        ("image/svg+xml", SVG),
        ("text/html", HTML),
        ("image/gif", b"GIF89a....".as_slice()),
        ("image/png; charset=utf-8", b"".as_slice()),
    ] {
        let scene = app.create_scene().await;
        app.fake
            .fail_next(Api::CodeImage, Fault::Typed(content_type, body));
        let res = app.qrcode(&scene.id).await;
        let problem = assert_problem(res, 502, "wechat_error").await;
        assert!(problem["errcode"].is_i64(), "{content_type}: {problem}");
        // Nothing was kept: the next request asks again and gets the image.
        let res = app.qrcode(&scene.id).await;
        assert_eq!(res.status(), 200, "{content_type}");
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn an_image_of_another_type_kept_before_is_not_served_either() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let db = app.db().await;
    scene_codes::Entity::insert(scene_codes::ActiveModel {
        scene_id: Set(scene.id.clone()),
        content_type: Set("image/svg+xml".into()),
        image: Set(SVG.to_vec()),
        created_at: Set(chrono::Utc::now().timestamp_millis()),
    })
    .exec_without_returning(&db)
    .await
    .expect("store an SVG as the scene's code");
    assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
    let _ = db.close().await;
}
