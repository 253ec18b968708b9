//! Real answers of a whole login and of the rate limit, checked against
//! the document.

use reqwest::Response;
use reqwest::header::CONTENT_TYPE;
use serde_json::json;

use crate::helpers::{
    CLIENT_ID, ORIGIN, PUBLIC_URL, session_key, spawn_app, spawn_app_with, unique,
};

use super::{Doc, header};

#[tokio::test]
async fn real_answers_of_a_whole_login_match_the_document() {
    let app = spawn_app().await;
    let doc = Doc::fetch(&app).await;

    for path in ["/healthz", "/readyz"] {
        let res = app.http.get(app.url(path)).send().await.expect("GET");
        assert_eq!(res.status(), 200);
        doc.conforms(res, "get", path).await;
    }

    // Create (201), the code image (its media type is documented).
    let res = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
        .await;
    assert_eq!(res.status(), 201);
    let created = doc.conforms(res, "post", "/api/v1/scenes").await;
    let scene_id = created["scene_id"].as_str().expect("scene_id").to_owned();
    let token = created["browser_token"].as_str().expect("token").to_owned();
    let scene = crate::helpers::Scene {
        id: scene_id.clone(),
        browser_token: token,
        body: created,
    };
    let res = app.qrcode(&scene_id).await;
    assert_eq!(res.status(), 200);
    let media = header(&res, CONTENT_TYPE.as_str());
    let qrcode = doc.operation("get", "/api/v1/scenes/{scene_id}/qrcode");
    assert!(
        qrcode["responses"]["200"]["content"][&media].is_object(),
        "{media} is not documented: {qrcode}"
    );

    // The WebSocket's pushes and the long-poll's answers are the event schema.
    let event_schema = json!({"$ref": "#/components/schemas/BrowserEvent"});
    // The auth frame the widget (and `ws_connect`) sends is the documented one.
    doc.assert_valid(
        "ws auth frame",
        &json!({"$ref": "#/components/schemas/WsAuthFrame"}),
        &json!({"type": "auth", "browser_token": scene.browser_token}),
    );
    let mut ws = app.ws_connect(&scene).await;
    doc.assert_valid("ws waiting", &event_schema, &ws.next_event().await);
    let events_path = "/api/v1/scenes/{scene_id}/events";
    let waiting = doc
        .conforms(app.events(&scene, None, 0).await, "get", events_path)
        .await;
    assert_eq!(waiting["state"], "waiting");

    // Scan (200) with a login code of the fake WeChat.
    let code = unique("code");
    let person = unique("o");
    app.fake
        .add_code(&code, &person, Some(&unique("u")), &session_key());
    let res = app.scan(&scene_id, &code).await;
    assert_eq!(res.status(), 200);
    let scan = doc.conforms(res, "post", "/api/v1/mp/scan").await;
    let mp_token = scan["mp_token"].as_str().expect("mp_token");
    doc.assert_valid("ws scanned", &event_schema, &ws.next_event().await);

    // Avatar upload (201) with the mp token as Bearer, and the image (200).
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(8, 8))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("PNG");
    let res = app
        .http
        .post(app.url("/api/v1/mp/avatar"))
        .header(CONTENT_TYPE, "image/png")
        .bearer_auth(mp_token)
        .body(png)
        .send()
        .await
        .expect("POST avatar");
    assert_eq!(res.status(), 201);
    let uploaded = doc.conforms(res, "post", "/api/v1/mp/avatar").await;
    let avatar_url = uploaded["avatar_url"].as_str().expect("avatar_url");
    let avatar_path = avatar_url.strip_prefix(PUBLIC_URL).expect("a hub URL");
    let res = app
        .http
        .get(app.url(avatar_path))
        .send()
        .await
        .expect("GET avatar");
    assert_eq!(res.status(), 200);
    let media = header(&res, CONTENT_TYPE.as_str());
    assert!(
        doc.operation("get", "/api/v1/avatars/{id}")["responses"]["200"]["content"][&media]
            .is_object(),
        "{media}"
    );

    // Confirm (200) with a profile; the confirmed event with ticket and user.
    let res = app
        .confirm(&json!({
            "scene_id": scene_id, "mp_token": mp_token,
            "profile": {"nickname": "Alice", "avatar_url": "https://img.example/a.png"},
        }))
        .await;
    assert_eq!(res.status(), 200);
    let confirmed = doc.conforms(res, "post", "/api/v1/mp/confirm").await;
    assert_eq!(confirmed["state"], "confirmed");
    let pushed = ws.next_event().await;
    doc.assert_valid("ws confirmed", &event_schema, &pushed);
    let polled = doc
        .conforms(app.events(&scene, None, 0).await, "get", events_path)
        .await;
    assert_eq!(polled["state"], "confirmed");
    assert_eq!(polled["user"]["nickname"], "Alice");

    // Redeem (200).
    let ticket = polled["ticket"].as_str().expect("ticket");
    let res = app.redeem(ticket).await;
    assert_eq!(res.status(), 200);
    let redeemed = doc.conforms(res, "post", "/api/v1/tickets/redeem").await;
    assert_eq!(redeemed["scene_id"], scene_id.as_str());

    // Cancel (200) on a second scene, with a single-step code.
    let other = app.create_scene().await;
    let code = app.login_code(&unique("o"));
    let res = app
        .cancel(&json!({"scene_id": other.id, "code": code}))
        .await;
    assert_eq!(res.status(), 200);
    let cancelled = doc.conforms(res, "post", "/api/v1/mp/cancel").await;
    assert_eq!(cancelled["state"], "cancelled");

    // A login inside the mini-program (200), the same person as above.
    let res = app
        .post_json(
            "/api/v1/mp/login",
            &json!({"code": app.login_code(&unique("o"))}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let inside = doc.conforms(res, "post", "/api/v1/mp/login").await;
    assert!(
        inside["id_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );

    // The person's account (200) and its deletion (200).
    let res = app
        .post_json(
            "/api/v1/mp/account",
            &json!({"code": app.login_code(&person)}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let account = doc.conforms(res, "post", "/api/v1/mp/account").await;
    assert_eq!(account["user"]["id"], confirmed["user_id"]);
    assert_eq!(account["logins"].as_array().map(Vec::len), Some(1));
    let res = app
        .post_json(
            "/api/v1/mp/account/delete",
            &json!({"code": app.login_code(&person)}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let deleted = doc.conforms(res, "post", "/api/v1/mp/account/delete").await;
    assert_eq!(deleted["deleted"], true);

    // Refusals: each a documented status with the problem schema.
    let unknown_scene = "0123456789abcdef0123456789abcdef";
    let scan_path = "/api/v1/mp/scan";
    let cases: Vec<(Response, &str, &str, u16, &[&str])> = vec![
        (
            app.scan(unknown_scene, &app.login_code("o_x")).await,
            "post",
            scan_path,
            404,
            &["scene_not_found"],
        ),
        (
            app.scan(&other.id, &app.login_code("o_y")).await,
            "post",
            scan_path,
            409,
            &["scene_final", "scene_taken"],
        ),
        (
            app.scan(&app.create_scene().await.id, "no-such-code").await,
            "post",
            scan_path,
            502,
            &["wechat_error"],
        ),
        (
            app.post_json(
                "/api/v1/mp/account",
                &json!({"code": app.login_code(&person)}),
            )
            .await,
            "post",
            "/api/v1/mp/account",
            404,
            &["user_not_found"],
        ),
        (
            app.post_scene(&json!({"client_id": "nobody"}), None).await,
            "post",
            "/api/v1/scenes",
            400,
            &["unknown_client"],
        ),
        (
            app.post_scene(&json!({"client_id": CLIENT_ID}), Some("http://evil.test"))
                .await,
            "post",
            "/api/v1/scenes",
            403,
            &["origin_not_allowed"],
        ),
        (
            app.post_json(scan_path, &json!({"scene_id": 7})).await,
            "post",
            scan_path,
            400,
            &["invalid_request"],
        ),
        (
            app.redeem(ticket).await,
            "post",
            "/api/v1/tickets/redeem",
            400,
            &["invalid_ticket"],
        ),
        (
            app.redeem_as(CLIENT_ID, "wrong-secret", ticket).await,
            "post",
            "/api/v1/tickets/redeem",
            401,
            &["unauthorized"],
        ),
        (
            app.http
                .get(app.url(&format!("/api/v1/scenes/{scene_id}/events")))
                .send()
                .await
                .expect("GET events"),
            "get",
            events_path,
            401,
            &["invalid_token"],
        ),
        (
            app.http
                .post(app.url("/api/v1/mp/avatar"))
                .header(CONTENT_TYPE, "image/png")
                .body(vec![1u8, 2, 3])
                .send()
                .await
                .expect("POST avatar"),
            "post",
            "/api/v1/mp/avatar",
            401,
            &["invalid_token"],
        ),
        (
            app.http
                .get(app.url(&format!("/api/v1/avatars/{unknown_scene}")))
                .send()
                .await
                .expect("GET avatar"),
            "get",
            "/api/v1/avatars/{id}",
            404,
            &["invalid_request"],
        ),
        (
            app.qrcode(unknown_scene).await,
            "get",
            "/api/v1/scenes/{scene_id}/qrcode",
            404,
            &["scene_not_found"],
        ),
        (
            app.http
                .get(app.url(&format!("/api/v1/scenes/{scene_id}/ws")))
                .send()
                .await
                .expect("GET ws"),
            "get",
            "/api/v1/scenes/{scene_id}/ws",
            400,
            &["invalid_request"],
        ),
    ];
    for (res, method, path, status, codes) in cases {
        let code = doc.problem(res, method, path, status).await;
        assert!(codes.contains(&code.as_str()), "{method} {path}: {code}");
    }
}

#[tokio::test]
async fn rate_limited_answers_match_the_document() {
    let app = spawn_app_with(|c| {
        c.rate_limit.scenes_per_minute = 1;
        c.rate_limit.burst = 1;
    })
    .await;
    let doc = Doc::fetch(&app).await;
    let first = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
        .await;
    assert_eq!(first.status(), 201);
    let second = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
        .await;
    assert_eq!(
        doc.problem(second, "post", "/api/v1/scenes", 429).await,
        "rate_limited"
    );
}
