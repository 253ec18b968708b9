//! Redeeming tickets: once, with the right client's credentials, within 60 s.

use entity::tickets;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, Scene, TestApp, assert_problem,
    ok_json, spawn_app,
};

/// A confirmed scene and its ticket.
async fn confirmed(app: &TestApp) -> (Scene, String) {
    let scene = app.create_scene().await;
    let code = app.login_code("o_ticket");
    ok_json(
        app.confirm(&json!({"scene_id": scene.id, "code": code}))
            .await,
    )
    .await;
    let event = ok_json(app.events(&scene, None, 0).await).await;
    let ticket = event["ticket"].as_str().expect("ticket").to_owned();
    (scene, ticket)
}

#[tokio::test]
async fn ticket_works_once() {
    let app = spawn_app().await;
    let (scene, ticket) = confirmed(&app).await;
    let body = ok_json(app.redeem(&ticket).await).await;
    assert_eq!(body["scene_id"], scene.id.as_str());
    let res = app.redeem(&ticket).await;
    assert_problem(res, 400, "invalid_ticket").await;
    // Two redemptions at once of a fresh ticket: one wins.
    let (_, ticket) = confirmed(&app).await;
    let (a, b) = tokio::join!(app.redeem(&ticket), app.redeem(&ticket));
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 400]);
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_and_do_not_spend_the_ticket() {
    let app = spawn_app().await;
    let (_, ticket) = confirmed(&app).await;
    let res = app.redeem_as(CLIENT_ID, "not-the-secret", &ticket).await;
    assert!(res.headers().get("www-authenticate").is_some());
    assert_problem(res, 401, "unauthorized").await;
    let res = app.redeem_as("nobody", CLIENT_SECRET, &ticket).await;
    assert_problem(res, 401, "unauthorized").await;
    // The other client's secret with this client's id.
    let res = app.redeem_as(CLIENT_ID, OTHER_CLIENT_SECRET, &ticket).await;
    assert_problem(res, 401, "unauthorized").await;
    let res = app
        .http
        .post(app.url("/api/v1/tickets/redeem"))
        .json(&json!({"ticket": ticket}))
        .send()
        .await
        .expect("redeem");
    assert_problem(res, 401, "unauthorized").await;
    let res = app
        .http
        .post(app.url("/api/v1/tickets/redeem"))
        .header("Authorization", "Basic %%%notbase64")
        .json(&json!({"ticket": ticket}))
        .send()
        .await
        .expect("redeem");
    assert_problem(res, 401, "unauthorized").await;
    ok_json(app.redeem(&ticket).await).await;
}

#[tokio::test]
async fn another_clients_ticket_is_invalid_for_it() {
    let app = spawn_app().await;
    let (_, ticket) = confirmed(&app).await;
    let res = app
        .redeem_as(OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, &ticket)
        .await;
    assert_problem(res, 400, "invalid_ticket").await;
    // The failed attempt did not use it up.
    ok_json(app.redeem(&ticket).await).await;
}

#[tokio::test]
async fn forged_and_garbage_tickets_are_invalid() {
    let app = spawn_app().await;
    let (scene, ticket) = confirmed(&app).await;
    let (_, mac) = ticket.split_once('.').expect("ticket is id.mac");
    let mut flipped = mac.to_owned();
    let last = if flipped.ends_with('A') { 'B' } else { 'A' };
    flipped.pop();
    flipped.push(last);
    let other = app.create_scene().await;
    for bad in [
        format!("{}.{flipped}", scene.id),
        format!("{}.{mac}", other.id),
        format!("{}.", scene.id),
        scene.id.clone(),
        "garbage".to_owned(),
        String::new(),
        "x".repeat(5000),
        format!("{}.{mac}", "../../etc/passwd"),
    ] {
        let res = app.redeem(&bad).await;
        assert_problem(res, 400, "invalid_ticket").await;
    }
    // None of those harmed the real one.
    ok_json(app.redeem(&ticket).await).await;
}

#[tokio::test]
async fn stale_ticket_is_invalid() {
    let app = spawn_app().await;
    let (scene, ticket) = confirmed(&app).await;
    // Age the ticket past its 60 s instead of sleeping.
    let db = app.db().await;
    let aged = tickets::Entity::update_many()
        .col_expr(
            tickets::Column::ExpiresAt,
            Expr::value(chrono::Utc::now().timestamp_millis() - 1),
        )
        .filter(tickets::Column::SceneId.eq(scene.id.as_str()))
        .exec(&db)
        .await
        .expect("age the ticket");
    assert_eq!(aged.rows_affected, 1);
    let _ = db.close().await;
    assert_problem(app.redeem(&ticket).await, 400, "invalid_ticket").await;
}

#[tokio::test]
async fn ticket_lives_sixty_seconds() {
    let app = spawn_app().await;
    let (scene, _) = confirmed(&app).await;
    let db = app.db().await;
    let row = tickets::Entity::find_by_id(scene.id.clone())
        .one(&db)
        .await
        .expect("read")
        .expect("ticket row");
    let _ = db.close().await;
    assert_eq!(row.expires_at - row.issued_at, 60_000);
    assert_eq!(row.client_id, CLIENT_ID);
    assert!(row.redeemed_at.is_none());
}

#[tokio::test]
async fn no_ticket_before_the_confirm() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let event = ok_json(app.events(&scene, None, 0).await).await;
    assert!(event.get("ticket").is_none(), "{event}");
    app.scanned(&scene.id, &app.login_code("o_early")).await;
    let event = ok_json(app.events(&scene, None, 0).await).await;
    assert!(event.get("ticket").is_none(), "{event}");
    assert!(event.get("user").is_none(), "{event}");
}
