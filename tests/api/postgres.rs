//! The same flows on PostgreSQL, when `SCANLOGIN_TEST_POSTGRES_URL` names a
//! server (e.g. `postgres://postgres@127.0.0.1:5432/test`); each test gets a
//! fresh database `t_<uuid>`, dropped afterwards.

use std::time::Duration;

use serde_json::json;

use crate::concurrency::double_confirm_has_one_winner;
use crate::flow::assert_redeems;
use crate::helpers::required;
use crate::helpers::{Ending, TestApp, TestDb, assert_problem, ok_json, spawn_app_with};

async fn spawn_pg() -> Option<TestApp> {
    required::postgres_url()?;
    Some(spawn_app_with(|cfg| cfg.db = TestDb::Postgres).await)
}

#[tokio::test]
async fn happy_path_on_postgres() {
    let Some(app) = spawn_pg().await else { return };
    assert!(app.db_url.starts_with("postgres"), "{}", app.db_url);
    let scene = app.create_scene().await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    let mp_token = app.scanned(&scene.id, &app.login_code("o_pg")).await;
    assert_eq!(ws.next_event().await["state"], "scanned");
    let res = app
        .confirm(&json!({"scene_id": scene.id, "mp_token": mp_token,
            "profile": {"nickname": "Pg"}}))
        .await;
    ok_json(res).await;
    let event = ws.next_event().await;
    assert_eq!(event["state"], "confirmed");
    assert_eq!(event["user"]["nickname"], "Pg");
    assert_eq!(
        ws.close_code(Duration::from_secs(5)).await,
        Ending::Closed(1000)
    );
    let ticket = event["ticket"].as_str().expect("ticket");
    assert_redeems(&app, &scene, ticket, "o_pg").await;
    assert_problem(app.redeem(ticket).await, 400, "invalid_ticket").await;
}

#[tokio::test]
async fn parallel_double_confirm_on_postgres() {
    let Some(app) = spawn_pg().await else { return };
    double_confirm_has_one_winner(&app).await;
}

#[tokio::test]
async fn same_new_person_on_two_scenes_at_once_on_postgres() {
    let Some(app) = spawn_pg().await else { return };
    crate::concurrency::first_logins_at_once_make_one_user(&app, None).await;
}

#[tokio::test]
async fn same_new_unionid_in_two_apps_at_once_on_postgres() {
    if required::postgres_url().is_none() {
        return;
    }
    let app = spawn_app_with(|cfg| {
        cfg.db = TestDb::Postgres;
        cfg.apps
            .push(("wxtest0000000002".into(), "second-app-secret".into()));
    })
    .await;
    crate::concurrency::first_logins_at_once_make_one_user(&app, Some("wxtest0000000002")).await;
}

#[tokio::test]
async fn a_flight_has_one_holder_across_nodes_and_a_bounded_wait() {
    use actix_web::ResponseError;
    use scanlogin::config::DatabaseSettings;
    use scanlogin::flight::{FlightError, Purpose, SingleFlight};

    let Some(db) = crate::cluster::ClusterDb::create().await else {
        return;
    };
    let settings = DatabaseSettings {
        url: secrecy::SecretString::from(db.url.clone()),
        ..DatabaseSettings::default()
    };
    // Two pools, as two nodes have.
    let wait = Duration::from_millis(300);
    let one = SingleFlight::new(
        Purpose::CodeImage,
        scanlogin::db::open(&settings).await.expect("pool one"),
        wait,
    );
    let two = SingleFlight::new(
        Purpose::CodeImage,
        scanlogin::db::open(&settings).await.expect("pool two"),
        wait,
    );
    let held = one.enter("scene-1").await.expect("first turn");
    let started = std::time::Instant::now();
    let refused = two.enter("scene-1").await.err().expect("no second holder");
    assert!(matches!(refused, FlightError::Busy(..)), "{refused}");
    assert!(started.elapsed() >= wait, "{:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5), "bounded");
    let problem = scanlogin::http::error::ApiError::from(refused);
    assert_eq!(problem.status_code(), 503);
    assert_eq!(problem.code(), "unavailable");
    // Another key, and the same key for another purpose, are not held.
    two.enter("scene-2").await.expect("another key");
    let tokens = SingleFlight::new(
        Purpose::AccessToken,
        scanlogin::db::open(&settings).await.expect("pool three"),
        wait,
    );
    tokens.enter("scene-1").await.expect("another purpose");
    // Landing hands the turn over.
    held.land().await.expect("land");
    two.enter("scene-1").await.expect("the next turn");
    // Dropping a turn without landing hands it over too.
    drop(one.enter("scene-3").await.expect("turn"));
    tokio::time::timeout(Duration::from_secs(5), two.enter("scene-3"))
        .await
        .expect("prompt")
        .expect("turn after a drop");
}
