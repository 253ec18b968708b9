//! Several apps: a scene shows one app's code and says which; a quota error
//! (45009) falls back to the next app; mini-program calls naming another
//! app are refused; per-app options reach getwxacodeunlimit; metrics count
//! calls and quota errors per app.

use entity::scenes;
use scanlogin::config::LineColor;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::helpers::fake_wechat::{Api, Fault, fake_image};
use crate::helpers::{TestApp, assert_problem, ok_json, session_key, spawn_app_with, unique};

/// A hub with two apps of fresh ids (metrics are per process, so the ids
/// keep each test's counts apart).
async fn two_apps() -> (TestApp, String, String) {
    let (a, b) = (unique("wxa"), unique("wxb"));
    let app = spawn_app_with(|c| {
        c.apps = vec![
            (a.clone(), "secret-a".into()),
            (b.clone(), "secret-b".into()),
        ];
    })
    .await;
    (app, a, b)
}

async fn code_app_of(app: &TestApp, scene_id: &str) -> Option<String> {
    let db = app.db().await;
    scenes::Entity::find_by_id(scene_id.to_owned())
        .one(&db)
        .await
        .expect("query")
        .expect("scene")
        .code_app_id
}

async fn metrics(app: &TestApp) -> String {
    let res = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(res.status(), 200);
    res.text().await.expect("text")
}

fn metric_line<'a>(text: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
    text.lines()
        .find(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
}

#[tokio::test]
async fn a_quota_error_on_the_first_app_takes_the_code_from_the_next() {
    let (app, a, b) = two_apps().await;
    let scene = app.create_scene().await;
    assert_eq!(scene.body["app_id"], a.as_str(), "{}", scene.body);
    assert_eq!(
        code_app_of(&app, &scene.id).await.as_deref(),
        Some(a.as_str())
    );

    app.fake.fail_next(
        Api::CodeImage,
        Fault::Errcode(45009, "reach max api daily quota limit"),
    );
    let res = app.qrcode(&scene.id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.bytes().await.expect("bytes").as_ref(),
        fake_image(&scene.id)
    );
    assert_eq!(app.fake.calls(Api::CodeImage), 2);
    // The scene now says the second app.
    assert_eq!(
        code_app_of(&app, &scene.id).await.as_deref(),
        Some(b.as_str())
    );
    // The image is kept: WeChat is not asked again.
    assert_eq!(app.qrcode(&scene.id).await.status(), 200);
    assert_eq!(app.fake.calls(Api::CodeImage), 2);

    // The phone that opens it is app B's; app A's is refused by name.
    let code_a = unique("code");
    app.fake
        .add_code_for(&a, &code_a, "o_a", None, &session_key());
    let body = assert_problem(
        app.post_json(
            "/api/v1/mp/scan",
            &json!({"scene_id": scene.id, "code": code_a, "app_id": a}),
        )
        .await,
        400,
        "invalid_request",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&b) && d.contains(&a)),
        "{body}"
    );
    let code_b = unique("code");
    app.fake
        .add_code_for(&b, &code_b, "o_b", None, &session_key());
    let scanned = ok_json(
        app.post_json(
            "/api/v1/mp/scan",
            &json!({"scene_id": scene.id, "code": code_b, "app_id": b}),
        )
        .await,
    )
    .await;
    assert_eq!(scanned["state"], "scanned");

    // App A's quota is spent until midnight in Beijing: new scenes say B.
    let next = app.create_scene().await;
    assert_eq!(next.body["app_id"], b.as_str(), "{}", next.body);
    assert_eq!(app.qrcode(&next.id).await.status(), 200);
    assert_eq!(app.fake.calls(Api::CodeImage), 3);

    let text = metrics(&app).await;
    let quota_a = format!("app_id=\"{a}\"");
    let quota_b = format!("app_id=\"{b}\"");
    let line = metric_line(&text, "scanlogin_wechat_quota_errors_total", &[&quota_a])
        .unwrap_or_else(|| panic!("no quota metric for {a}:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(metric_line(&text, "scanlogin_wechat_quota_errors_total", &[&quota_b]).is_none());
    let line = metric_line(
        &text,
        "scanlogin_wechat_code_calls_total",
        &[&quota_b, "outcome=\"ok\""],
    )
    .unwrap_or_else(|| panic!("no call metric for {b}:\n{text}"));
    assert!(line.ends_with(" 2"), "{line}");
    let line = metric_line(
        &text,
        "scanlogin_wechat_code_calls_total",
        &[&quota_a, "outcome=\"45009\""],
    )
    .unwrap_or_else(|| panic!("no call metric for {a}:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
}

#[tokio::test]
async fn a_quota_error_on_every_app_is_502() {
    let (app, a, _b) = two_apps().await;
    let scene = app.create_scene().await;
    for _ in 0..2 {
        app.fake.fail_next(
            Api::CodeImage,
            Fault::Errcode(45009, "reach max api daily quota limit"),
        );
    }
    let body = assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
    assert_eq!(body["errcode"], 45009, "{body}");
    assert_eq!(app.fake.calls(Api::CodeImage), 2, "each app asked once");
    assert_eq!(app.state_of(&scene).await, "waiting");
    assert_eq!(
        code_app_of(&app, &scene.id).await.as_deref(),
        Some(a.as_str())
    );
    // Every app out of quota: the scene's own app is still asked (once), so
    // a reset quota is noticed.
    let res = app.qrcode(&scene.id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.fake.calls(Api::CodeImage), 3);
}

#[tokio::test]
async fn other_errors_do_not_fall_back() {
    let (app, a, _b) = two_apps().await;
    let scene = app.create_scene().await;
    app.fake
        .fail_next(Api::CodeImage, Fault::Errcode(41030, "invalid page"));
    let body = assert_problem(app.qrcode(&scene.id).await, 502, "wechat_error").await;
    assert_eq!(body["errcode"], 41030);
    assert_eq!(app.fake.calls(Api::CodeImage), 1);
    assert_eq!(
        code_app_of(&app, &scene.id).await.as_deref(),
        Some(a.as_str())
    );
}

#[tokio::test]
async fn mini_program_calls_naming_another_app_are_refused() {
    let (app, a, b) = two_apps().await;
    // The client of app B (helpers give every later app a client).
    let scene = app.create_scene_in(&b).await;
    let code = unique("code");
    app.fake
        .add_code_for(&a, &code, "o_wrong", None, &session_key());
    for path in ["/api/v1/mp/scan", "/api/v1/mp/confirm", "/api/v1/mp/cancel"] {
        let body = assert_problem(
            app.post_json(
                path,
                &json!({"scene_id": scene.id, "code": code, "app_id": a}),
            )
            .await,
            400,
            "invalid_request",
        )
        .await;
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains(&b) && detail.contains(&a), "{path}: {body}");
    }
    // Nothing changed and WeChat was not asked.
    assert_eq!(app.state_of(&scene).await, "waiting");
    assert_eq!(app.fake.calls(Api::CodeToSession), 0);
    // A phone that names no app acts for the scene's app.
    let code_b = unique("code");
    app.fake
        .add_code_for(&b, &code_b, "o_right", None, &session_key());
    let scanned = ok_json(app.scan(&scene.id, &code_b).await).await;
    assert_eq!(scanned["state"], "scanned");
}

#[tokio::test]
async fn app_options_reach_getwxacodeunlimit() {
    let app = spawn_app_with(|c| {
        c.settings(|s| {
            for app in &mut s.apps {
                app.auto_color = false;
                app.line_color = Some(LineColor {
                    r: 7,
                    g: 193,
                    b: 96,
                });
                app.is_hyaline = true;
            }
        });
    })
    .await;
    let scene = app.create_scene().await;
    assert_eq!(app.qrcode(&scene.id).await.status(), 200);
    let sent = app.fake.code_requests();
    let last = sent.last().expect("a code request");
    assert_eq!(last["auto_color"], false, "{last}");
    assert_eq!(
        last["line_color"],
        json!({"r": 7, "g": 193, "b": 96}),
        "{last}"
    );
    assert_eq!(last["is_hyaline"], true, "{last}");
    // Without options: WeChat's defaults, no line_color.
    let plain = spawn_app_with(|_| {}).await;
    let scene = plain.create_scene().await;
    assert_eq!(plain.qrcode(&scene.id).await.status(), 200);
    let sent = plain.fake.code_requests();
    let last = sent.last().expect("a code request");
    assert_eq!(last["is_hyaline"], false, "{last}");
    assert!(last.get("line_color").is_none(), "{last}");
}
