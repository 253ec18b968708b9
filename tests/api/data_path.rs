//! The data path under the flow: how many statements and commits each
//! endpoint costs, that a change the bus did not carry still reaches a
//! waiting socket through the node's catch-up, and that the SQLite writer
//! keeps one winner among racing requests of one scene.

use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::helpers::{TestApp, ok_json, spawn_app_with};

/// Statements and commits the hub ran between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cost {
    statements: u64,
    commits: u64,
}

fn reading(app: &TestApp) -> Cost {
    Cost {
        statements: app.db_stats.statements(),
        commits: app.db_stats.commits(),
    }
}

/// Waits (at most 10 s) until the hub has touched its database for 500 ms
/// no more (a request's writes may still be committing), and returns the
/// reading then.
async fn settled(app: &TestApp) -> Cost {
    let mut last = reading(app);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = reading(app);
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the hub kept running statements on its own: {last:?}");
}

async fn cost_of<F: std::future::Future>(app: &TestApp, f: F) -> (F::Output, Cost) {
    let before = settled(app).await;
    let out = f.await;
    let after = settled(app).await;
    let cost = Cost {
        statements: after.statements - before.statements,
        commits: after.commits - before.commits,
    };
    (out, cost)
}

/// A hub whose background work (expiry sweep, catch-up, housekeeping)
/// stays out of the way of counting.
async fn quiet_hub() -> TestApp {
    spawn_app_with(|c| {
        c.housekeeping_secs = 3600;
        c.settings(|s| {
            s.scene.sweep_interval_ms = 60_000;
            s.scene.catch_up_ms = 600_000;
        });
    })
    .await
}

#[tokio::test]
async fn a_login_costs_few_statements_and_one_commit_per_write() {
    let app = quiet_hub().await;
    let (scene, create) = cost_of(&app, app.create_scene()).await;
    let (mut ws, upgrade) = cost_of(&app, async {
        let mut ws = app.ws_connect(&scene).await;
        assert_eq!(ws.next_event().await["state"], "waiting");
        ws
    })
    .await;
    let code = app.login_code("o_counted");
    let (confirmed, confirm) = cost_of(
        &app,
        app.confirm(&json!({"scene_id": scene.id, "code": code})),
    )
    .await;
    let body = ok_json(confirmed).await;
    assert_eq!(body["state"], "confirmed", "{body}");
    let event = ws.next_event().await;
    let ticket = event["ticket"].as_str().expect("ticket").to_owned();
    let (redeemed, redeem) = cost_of(&app, app.redeem(&ticket)).await;
    assert_eq!(redeemed.status(), 200);
    eprintln!("create {create:?}, socket {upgrade:?}, confirm {confirm:?}, redeem {redeem:?}");
    // 8a6b6fd ran 13 statements and 5 commits for these four steps.
    assert_eq!(
        create,
        Cost {
            statements: 1,
            commits: 1
        },
        "create"
    );
    assert_eq!(
        upgrade,
        Cost {
            statements: 1,
            commits: 0
        },
        "socket: one read for upgrade and auth"
    );
    assert_eq!(
        confirm.commits, 1,
        "confirm: one transaction, code bookkeeping included"
    );
    // One more since the clients a person logged in to are kept (account view).
    assert!(confirm.statements <= 9, "confirm: {confirm:?}");
    assert_eq!(
        redeem,
        Cost {
            statements: 2,
            commits: 1
        },
        "redeem"
    );
}

#[tokio::test]
async fn the_full_flow_costs_one_commit_per_step() {
    let app = quiet_hub().await;
    // The first code image also fetches and stores the app's access token.
    let first = app.create_scene().await;
    assert_eq!(app.qrcode(&first.id).await.status(), 200);
    let scene = app.create_scene().await;
    let (image, qrcode) = cost_of(&app, app.qrcode(&scene.id)).await;
    assert_eq!(image.status(), 200);
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    let code = app.login_code("o_full");
    let (mp_token, scan) = cost_of(&app, app.scanned(&scene.id, &code)).await;
    assert_eq!(ws.next_event().await["state"], "scanned");
    let (confirmed, confirm) = cost_of(&app, app.confirm_token(&scene.id, &mp_token)).await;
    assert_eq!(confirmed.status(), 200);
    assert_eq!(ws.next_event().await["state"], "confirmed");
    eprintln!("qrcode {qrcode:?}, scan {scan:?}, confirm with the token {confirm:?}");
    // 8a6b6fd: qrcode 4 statements, 1 commit; scan 5 and 3; confirm 5 and 1.
    assert_eq!(
        qrcode,
        Cost {
            statements: 3,
            commits: 1
        },
        "qrcode: the image read once"
    );
    assert_eq!(
        scan.commits, 1,
        "scan: the scene and the code's note in one transaction"
    );
    assert!(scan.statements <= 4, "scan: {scan:?}");
    assert_eq!(confirm.commits, 1, "confirm: {confirm:?}");
    // One more since the clients a person logged in to are kept (account view).
    assert!(confirm.statements <= 7, "confirm: {confirm:?}");
}

#[tokio::test]
async fn a_change_the_bus_did_not_carry_reaches_the_socket_at_the_catch_up() {
    let app = spawn_app_with(|c| c.settings(|s| s.scene.catch_up_ms = 300)).await;
    let scene = app.create_scene().await;
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    // Another writer ends the scene behind the hub's back: no push is sent.
    let db = app.db().await;
    db.execute_unprepared(&format!(
        "UPDATE scenes SET state = 'cancelled', finished_at = 1 WHERE id = '{}'",
        scene.id
    ))
    .await
    .expect("cancel the scene in the database");
    let _ = db.close().await;
    // The heartbeat is 20 s and only pings: the catch-up (every 300 ms
    // here) is what brings the change.
    let event = ws.next_event_within(Duration::from_secs(10)).await;
    assert_eq!(event["state"], "cancelled", "{event}");
}

#[tokio::test]
async fn racing_confirms_cancels_and_redeems_of_one_scene_have_one_winner_each() {
    let app = spawn_app_with(|_| {}).await;
    for round in 0..5 {
        let scene = app.create_scene().await;
        let openid = format!("o_race_{round}");
        let mp_token = app.scanned(&scene.id, &app.login_code(&openid)).await;
        let confirms = (0..4).map(|_| app.confirm_token(&scene.id, &mp_token));
        let cancel_body = json!({"scene_id": scene.id, "mp_token": mp_token});
        let cancels = (0..4).map(|_| app.cancel(&cancel_body));
        let (confirmed, cancelled) = tokio::join!(
            futures_util::future::join_all(confirms),
            futures_util::future::join_all(cancels)
        );
        let ok_confirms = confirmed.iter().filter(|r| r.status() == 200).count();
        let ok_cancels = cancelled.iter().filter(|r| r.status() == 200).count();
        let state = app.state_of(&scene).await;
        match state.as_str() {
            "confirmed" => assert_eq!((ok_cancels, ok_confirms > 0), (0, true)),
            "cancelled" => assert_eq!((ok_confirms, ok_cancels > 0), (0, true)),
            other => panic!("round {round}: the scene ended {other}"),
        }
        for r in confirmed.into_iter().chain(cancelled) {
            let status = r.status().as_u16();
            assert!(status == 200 || status == 409, "round {round}: {status}");
        }
        if state == "confirmed" {
            let rows = crate::concurrency::ticket_rows(&app, &scene.id).await;
            assert_eq!(rows, 1, "round {round}: one ticket");
        }
    }
}
