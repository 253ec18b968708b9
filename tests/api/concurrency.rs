//! Who wins: the first scanner binds the scene, racing confirms and cancels
//! have one winner, retries give the same answer, and WeChat is asked once.

use std::time::Duration;

use entity::tickets;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::helpers::fake_wechat::{Api, Fault, fake_image};
use crate::helpers::{TestApp, assert_problem, ok_json, spawn_app};

/// How many ticket rows the scene has.
pub async fn ticket_rows(app: &TestApp, scene_id: &str) -> u64 {
    let db = app.db().await;
    let n = tickets::Entity::find()
        .filter(tickets::Column::SceneId.eq(scene_id))
        .count(&db)
        .await
        .expect("count tickets");
    let _ = db.close().await;
    n
}

#[tokio::test]
async fn second_scanner_gets_scene_taken() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let first = app.login_code("o_first");
    let mp_token = app.scanned(&scene.id, &first).await;

    let intruder = app.login_code("o_intruder");
    assert_problem(app.scan(&scene.id, &intruder).await, 409, "scene_taken").await;
    // Nor can they confirm or cancel with a fresh code of theirs.
    let code = app.login_code("o_intruder");
    let res = app
        .confirm(&json!({"scene_id": scene.id, "code": code}))
        .await;
    assert_problem(res, 409, "scene_taken").await;
    let code = app.login_code("o_intruder");
    let res = app
        .cancel(&json!({"scene_id": scene.id, "code": code}))
        .await;
    assert_problem(res, 409, "scene_taken").await;
    assert_eq!(app.state_of(&scene).await, "scanned");

    // The first scanner still can.
    let body = ok_json(app.confirm_token(&scene.id, &mp_token).await).await;
    assert_eq!(body["state"], "confirmed");
}

#[tokio::test]
async fn same_person_rescanning_is_fine() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let token1 = app.scanned(&scene.id, &app.login_code("o_same")).await;
    let res = app.scan(&scene.id, &app.login_code("o_same")).await;
    let body = ok_json(res).await;
    assert_eq!(body["state"], "scanned");
    let token2 = body["mp_token"].as_str().expect("mp_token");
    assert_eq!(app.state_of(&scene).await, "scanned");
    // Either token confirms: both name this scene and this person.
    assert_eq!(token1, token2);
    ok_json(app.confirm_token(&scene.id, token2).await).await;
}

#[tokio::test]
async fn mp_token_of_one_scene_does_not_work_on_another() {
    let app = spawn_app().await;
    let a = app.create_scene().await;
    let b = app.create_scene().await;
    let token_a = app.scanned(&a.id, &app.login_code("o_x")).await;
    app.scanned(&b.id, &app.login_code("o_x")).await;
    let res = app.confirm_token(&b.id, &token_a).await;
    // The same person, but a token bound to scene a.
    assert_problem(res, 401, "invalid_token").await;
    let res = app.confirm_token(&a.id, "forged-token").await;
    assert_problem(res, 401, "invalid_token").await;
    assert_eq!(app.state_of(&a).await, "scanned");
    assert_eq!(app.state_of(&b).await, "scanned");
}

#[tokio::test]
async fn parallel_double_confirm_has_one_winner() {
    let app = spawn_app().await;
    double_confirm_has_one_winner(&app).await;
}

/// Shared with the PostgreSQL tests.
pub async fn double_confirm_has_one_winner(app: &TestApp) {
    for round in 0..3 {
        let scene = app.create_scene().await;
        let mut ws = app.ws_connect(&scene).await;
        assert_eq!(ws.next_event().await["state"], "waiting");
        let mp_token = app.scanned(&scene.id, &app.login_code("o_racer")).await;
        assert_eq!(ws.next_event().await["state"], "scanned");

        let (one, two) = tokio::join!(
            app.confirm_token(&scene.id, &mp_token),
            app.confirm_token(&scene.id, &mp_token)
        );
        let mut statuses = [one.status().as_u16(), two.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}");
        let loser = if one.status() == 200 { two } else { one };
        assert_problem(loser, 409, "scene_final").await;

        let (events, ending) = ws.closing(Duration::from_secs(5)).await;
        assert_eq!(ending, crate::helpers::Ending::Closed(1000));
        assert_eq!(events.len(), 1, "exactly one confirmed event: {events:?}");
        let ticket = events[0]["ticket"].as_str().expect("ticket");
        assert_eq!(ticket_rows(app, &scene.id).await, 1, "exactly one ticket");
        ok_json(app.redeem(ticket).await).await;
    }
}

#[tokio::test]
async fn confirm_racing_cancel_has_one_winner() {
    let app = spawn_app().await;
    for round in 0..3 {
        let scene = app.create_scene().await;
        let mp_token = app.scanned(&scene.id, &app.login_code("o_racer")).await;
        let cancel_body = json!({"scene_id": scene.id, "mp_token": mp_token});
        let (confirm, cancel) = tokio::join!(
            app.confirm_token(&scene.id, &mp_token),
            app.cancel(&cancel_body)
        );
        let (c, x) = (confirm.status().as_u16(), cancel.status().as_u16());
        let state = app.state_of(&scene).await;
        match (c, x) {
            (200, 409) => {
                assert_eq!(state, "confirmed", "round {round}");
                assert_problem(cancel, 409, "scene_final").await;
                assert_eq!(ticket_rows(&app, &scene.id).await, 1);
            }
            (409, 200) => {
                assert_eq!(state, "cancelled", "round {round}");
                assert_problem(confirm, 409, "scene_final").await;
                assert_eq!(ticket_rows(&app, &scene.id).await, 0);
            }
            other => panic!("round {round}: confirm/cancel answered {other:?}"),
        }
    }
}

#[tokio::test]
async fn scan_retry_with_the_same_code_gives_the_same_answer() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let code = app.login_code("o_retry");
    let one = ok_json(app.scan(&scene.id, &code).await).await;
    let two = ok_json(app.scan(&scene.id, &code).await).await;
    assert_eq!(one, two);
    assert_eq!(app.fake.calls(Api::CodeToSession), 1);
}

#[tokio::test]
async fn confirm_retry_with_the_same_code_gives_the_same_answer() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let code = app.login_code("o_retry");
    let body = json!({"scene_id": scene.id, "code": code});
    let one = ok_json(app.confirm(&body).await).await;
    let two = ok_json(app.confirm(&body).await).await;
    assert_eq!(one, two);
    assert_eq!(one["state"], "confirmed");
    assert_eq!(app.fake.calls(Api::CodeToSession), 1);
    assert_eq!(ticket_rows(&app, &scene.id).await, 1);

    // A cancel retried with its code, likewise.
    let scene = app.create_scene().await;
    let code = app.login_code("o_retry2");
    let body = json!({"scene_id": scene.id, "code": code});
    assert_eq!(ok_json(app.cancel(&body).await).await["state"], "cancelled");
    assert_eq!(ok_json(app.cancel(&body).await).await["state"], "cancelled");
    assert_eq!(app.fake.calls(Api::CodeToSession), 2);
}

#[tokio::test]
async fn a_code_used_on_one_scene_does_not_replay_on_another() {
    let app = spawn_app().await;
    let a = app.create_scene().await;
    let b = app.create_scene().await;
    let code = app.login_code("o_victim");
    ok_json(app.confirm(&json!({"scene_id": a.id, "code": code})).await).await;
    // Someone who saw the code replays it on their own scene within 5 min:
    // at WeChat the code is spent, so this must not log them in as o_victim.
    let res = app.confirm(&json!({"scene_id": b.id, "code": code})).await;
    let problem = assert_problem(res, 400, "invalid_request").await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("another scene")),
        "{problem}"
    );
    assert_eq!(app.state_of(&b).await, "waiting");
    assert_eq!(ticket_rows(&app, &b.id).await, 0);
    // Same for a scan.
    let c = app.create_scene().await;
    let res = app.scan(&c.id, &code).await;
    assert_problem(res, 400, "invalid_request").await;
    assert_eq!(app.state_of(&c).await, "waiting");
    // WeChat was asked once, for the first scene.
    assert_eq!(app.fake.calls(Api::CodeToSession), 1);
}

#[tokio::test]
async fn two_people_scanning_at_once_one_binds() {
    let app = spawn_app().await;
    for round in 0..3 {
        let scene = app.create_scene().await;
        let (a, b) = (app.login_code("o_ann"), app.login_code("o_ben"));
        let (ra, rb) = tokio::join!(app.scan(&scene.id, &a), app.scan(&scene.id, &b));
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}");
        let loser = if ra.status() == 200 { rb } else { ra };
        assert_problem(loser, 409, "scene_taken").await;
        assert_eq!(app.state_of(&scene).await, "scanned");
    }
}

#[tokio::test]
async fn two_people_confirming_a_waiting_scene_at_once_one_wins() {
    let app = spawn_app().await;
    for round in 0..3 {
        let scene = app.create_scene().await;
        let (a, b) = (app.login_code("o_ann"), app.login_code("o_ben"));
        let (ba, bb) = (
            json!({"scene_id": scene.id, "code": a}),
            json!({"scene_id": scene.id, "code": b}),
        );
        let (ra, rb) = tokio::join!(app.confirm(&ba), app.confirm(&bb));
        let mut statuses = [ra.status().as_u16(), rb.status().as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "round {round}");
        let loser = if ra.status() == 200 { rb } else { ra };
        assert_problem(loser, 409, "scene_taken").await;
        assert_eq!(ticket_rows(&app, &scene.id).await, 1);
    }
}

#[tokio::test]
async fn concurrent_scans_with_one_code_exchange_it_once() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let code = app.login_code("o_double_tap");
    app.fake
        .fail_next(Api::CodeToSession, Fault::Delay(Duration::from_millis(300)));
    let (one, two) = tokio::join!(app.scan(&scene.id, &code), app.scan(&scene.id, &code));
    let (one, two) = (ok_json(one).await, ok_json(two).await);
    assert_eq!(one, two);
    assert_eq!(app.fake.calls(Api::CodeToSession), 1);
}

#[tokio::test]
async fn concurrent_confirm_retry_with_one_code_gets_the_same_answer() {
    let app = spawn_app().await;
    for round in 0..3 {
        let scene = app.create_scene().await;
        let code = app.login_code("o_impatient");
        app.fake
            .fail_next(Api::CodeToSession, Fault::Delay(Duration::from_millis(200)));
        let body = json!({"scene_id": scene.id, "code": code});
        let (one, two) = tokio::join!(app.confirm(&body), app.confirm(&body));
        let (s1, s2) = (one.status().as_u16(), two.status().as_u16());
        let (t1, t2) = (
            one.text().await.unwrap_or_default(),
            two.text().await.unwrap_or_default(),
        );
        assert_eq!((s1, s2), (200, 200), "round {round}: {t1} / {t2}");
        assert_eq!(t1, t2);
        assert_eq!(ticket_rows(&app, &scene.id).await, 1);
    }
}

/// One code sent for two scenes at once (two tabs, one phone): the code's
/// hold lets one of them exchange it and bind it; the other finds it bound
/// to another scene and is refused, and WeChat is asked once.
#[tokio::test]
async fn one_code_confirming_two_scenes_at_once_logs_in_to_one() {
    let app = spawn_app().await;
    for round in 0..3 {
        let (a, b) = (app.create_scene().await, app.create_scene().await);
        let code = app.login_code("o_two_tabs");
        // A slow WeChat keeps both confirms in flight together.
        app.fake
            .fail_next(Api::CodeToSession, Fault::Delay(Duration::from_millis(300)));
        let asked = app.fake.calls(Api::CodeToSession);
        let (body_a, body_b) = (
            json!({"scene_id": a.id, "code": code}),
            json!({"scene_id": b.id, "code": code}),
        );
        let (ra, rb) = tokio::join!(app.confirm(&body_a), app.confirm(&body_b));
        let (winner, loser, refused) = match (ra.status().as_u16(), rb.status().as_u16()) {
            (200, _) => (&a, &b, rb),
            (_, 200) => (&b, &a, ra),
            other => panic!("round {round}: no confirm went through: {other:?}"),
        };
        assert_problem(refused, 400, "invalid_request").await;
        assert_eq!(
            app.fake.calls(Api::CodeToSession) - asked,
            1,
            "round {round}: WeChat asked once"
        );
        assert_eq!(ticket_rows(&app, &winner.id).await, 1, "round {round}");
        assert_eq!(ticket_rows(&app, &loser.id).await, 0, "round {round}");
        let event = ok_json(app.events(loser, None, 0).await).await;
        assert_eq!(event["state"], "waiting", "round {round}: {event}");
    }
}

#[tokio::test]
async fn twenty_concurrent_qrcode_requests_ask_wechat_once() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    // A slow WeChat keeps all twenty in flight together.
    app.fake
        .fail_next(Api::CodeImage, Fault::Delay(Duration::from_millis(400)));
    let requests = (0..20).map(|_| app.qrcode(&scene.id));
    let answers = tokio::time::timeout(
        Duration::from_secs(15),
        futures_util::future::join_all(requests),
    )
    .await
    .expect("all answered");
    let expected = fake_image(&scene.id);
    for res in answers {
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        assert_eq!(
            res.bytes().await.expect("bytes").as_ref(),
            expected.as_slice()
        );
    }
    assert_eq!(app.fake.calls(Api::CodeImage), 1);
    assert_eq!(app.fake.calls(Api::StableToken), 1);
    // What the hub asked WeChat for: this scene, the app's page.
    let asked = app.fake.code_requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["scene"], scene.id.as_str());
    assert_eq!(asked[0]["page"], "pages/scanlogin/index");
    assert_eq!(asked[0]["env_version"], "release");
    // A later request is served from the cache.
    let res = app.qrcode(&scene.id).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.fake.calls(Api::CodeImage), 1);
    // The token came from stable_token without force_refresh.
    let token_requests = app.fake.token_requests();
    assert_eq!(token_requests[0]["grant_type"], "client_credential");
    assert_ne!(token_requests[0]["force_refresh"], true);
}

#[tokio::test]
async fn access_token_is_shared_across_scenes() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let scene = app.create_scene().await;
        assert_eq!(app.qrcode(&scene.id).await.status(), 200);
    }
    assert_eq!(app.fake.calls(Api::CodeImage), 3);
    assert_eq!(app.fake.calls(Api::StableToken), 1);
}

/// Shared with the PostgreSQL tests: the same new person confirming two
/// scenes at once (two tabs, or two apps joined by a unionid) is one user.
pub async fn first_logins_at_once_make_one_user(app: &TestApp, second_app: Option<&str>) {
    for round in 0..4 {
        let a = app.create_scene().await;
        let b = match second_app {
            Some(app_b) => app.create_scene_in(app_b).await,
            None => app.create_scene().await,
        };
        let openid = crate::helpers::unique("o_twin");
        let unionid = second_app.map(|_| crate::helpers::unique("u_twin"));
        let (code_a, code_b) = (
            crate::helpers::unique("code"),
            crate::helpers::unique("code"),
        );
        let key = crate::helpers::session_key();
        app.fake
            .add_code(&code_a, &openid, unionid.as_deref(), &key);
        let openid_b = match second_app {
            Some(_) => format!("{openid}-b"),
            None => openid.clone(),
        };
        app.fake
            .add_code(&code_b, &openid_b, unionid.as_deref(), &key);
        let body_a = json!({"scene_id": a.id, "code": code_a});
        let mut body_b = json!({"scene_id": b.id, "code": code_b});
        if let Some(app_b) = second_app {
            body_b["app_id"] = json!(app_b);
        }
        let (ra, rb) = tokio::join!(app.confirm(&body_a), app.confirm(&body_b));
        let (ra, rb) = (ok_json(ra).await, ok_json(rb).await);
        assert_eq!(ra["user_id"], rb["user_id"], "round {round}");
        for (scene, app_id) in [(&a, None), (&b, second_app)] {
            let event = ok_json(app.events(scene, None, 0).await).await;
            let ticket = event["ticket"].as_str().expect("ticket");
            let res = match app_id {
                Some(app_id) => app.redeem_in(app_id, ticket).await,
                None => app.redeem(ticket).await,
            };
            let body = ok_json(res).await;
            assert_eq!(body["user"]["id"], ra["user_id"], "round {round}");
            // Every identity the two logins made, none lost to the race.
            let mut identities = body["user"]["identities"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            identities.sort_by_key(|i| i["app_id"].to_string());
            let mut want = vec![json!({"app_id": crate::helpers::APP_ID, "openid": openid})];
            if let Some(app_b) = second_app {
                want.push(json!({"app_id": app_b, "openid": openid_b}));
            }
            assert_eq!(identities, want, "round {round}: {body}");
        }
    }
}

#[tokio::test]
async fn same_new_person_on_two_scenes_at_once_is_one_user() {
    let app = spawn_app().await;
    first_logins_at_once_make_one_user(&app, None).await;
}

#[tokio::test]
async fn same_new_unionid_in_two_apps_at_once_is_one_user() {
    let app = crate::helpers::spawn_app_with(|cfg| {
        cfg.apps
            .push(("wxtest0000000002".into(), "second-app-secret".into()))
    })
    .await;
    first_logins_at_once_make_one_user(&app, Some("wxtest0000000002")).await;
}

#[tokio::test]
async fn eight_confirms_at_once_have_one_winner() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mp_token = app.scanned(&scene.id, &app.login_code("o_crowd")).await;
    let answers = tokio::time::timeout(
        Duration::from_secs(20),
        futures_util::future::join_all((0..8).map(|_| app.confirm_token(&scene.id, &mp_token))),
    )
    .await
    .expect("all answered");
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(ticket_rows(&app, &scene.id).await, 1);
}
