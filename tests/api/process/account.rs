//! `scanlogin users show|delete` beside a running `scanlogin serve`, both
//! the real binary on one SQLite file: the operator's view is the person's,
//! and the operator's deletion takes effect for the serving hub at once.

use std::path::Path;

use serde_json::{Value, json};

use super::{Hub, create_scene, next, post, sim_code, ws_auth};

/// `scanlogin users ARGS` on the hub's config and database: (exit code,
/// stdout, stderr).
fn users(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let args: Vec<&str> = std::iter::once("users")
        .chain(args.iter().copied())
        .collect();
    super::run_once(&args, dir, &[])
}

#[tokio::test]
async fn the_operator_shows_and_deletes_a_user_while_the_hub_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(dir.path(), &[], None);
    hub.wait_ready().await;

    // Zoe logs in; the site has not redeemed the ticket yet.
    let (scene, token) = create_scene(&hub).await;
    let mut ws = ws_auth(&hub, &scene, &token).await;
    assert_eq!(next(&mut ws).await.expect("state")["state"], "waiting");
    let code = sim_code(&hub, "zoe").await;
    let (status, confirmed) = post(
        hub.url("/api/v1/mp/confirm"),
        json!({"scene_id": scene, "code": code, "profile": {"nickname": "Zoe"}}),
    )
    .await;
    assert_eq!(status, 200, "{confirmed}");
    let user = confirmed["user_id"].as_str().expect("user_id").to_owned();
    let ticket = loop {
        let event = next(&mut ws).await.expect("an event");
        if event["state"] == "confirmed" {
            break event["ticket"].as_str().expect("ticket").to_owned();
        }
    };

    // The operator sees what the person sees.
    let (status, seen) = post(
        hub.url("/api/v1/mp/account"),
        json!({"code": sim_code(&hub, "zoe").await}),
    )
    .await;
    assert_eq!(status, 200, "{seen}");
    let (code, stdout, stderr) = users(dir.path(), &["show", &user]);
    assert_eq!(code, 0, "{stderr}");
    let shown: Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(shown, seen);
    assert_eq!(shown["user"]["nickname"], "Zoe");
    assert_eq!(shown["clients"][0]["client_id"], "demo");

    // The operator deletes; the serving hub refuses the old ticket at once.
    let (code, stdout, stderr) = users(dir.path(), &["delete", &user]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("user {user} deleted")), "{stdout}");
    let res = reqwest::Client::new()
        .post(hub.url("/api/v1/tickets/redeem"))
        .basic_auth("demo", Some("demo-client-secret"))
        .json(&json!({"ticket": ticket}))
        .send()
        .await
        .expect("redeem");
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.expect("problem");
    assert_eq!(problem["code"], "invalid_ticket");
    let (status, problem) = post(
        hub.url("/api/v1/mp/account"),
        json!({"code": sim_code(&hub, "zoe").await}),
    )
    .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (404, json!("user_not_found"))
    );

    // Unknown ids: non-zero, with a clear message.
    for args in [
        ["show", user.as_str()],
        ["delete", user.as_str()],
        ["show", "nobody"],
    ] {
        let (code, stdout, stderr) = users(dir.path(), &args);
        assert_eq!(code, 1, "{args:?}: {stdout}");
        assert!(
            stderr.contains(&format!("no user {:?}", args[1])),
            "{stderr}"
        );
    }
    let (code, _, stderr) = users(dir.path(), &["delete"]);
    assert_eq!(code, 2, "clap refuses a missing id: {stderr}");
}
