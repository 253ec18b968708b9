//! `user.deleted`: a person's deletion (theirs, or the operator's `scanlogin
//! users delete` while the hub runs) tells every client they logged in to
//! that has a webhook, signed like the login events.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::receiver::{Delivery, Receiver, assert_verified};
use super::{Hub, HubConfig, OTHER, SITE, WAIT, events_of, new_secret, open_db, sqlite_url};

/// Checks the Standard Webhooks signature of `d` with `secret` here too
/// (the stock verifier is skipped where node or its package is missing).
fn assert_signed(secret: &str, d: &Delivery) {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ secret"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC key");
    mac.update(format!("{}.{}.{}", d.id, d.timestamp, d.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(d.signature, expected, "signature of {}", d.body);
}

fn deleted_events(deliveries: &[Delivery]) -> Vec<(Value, &Delivery)> {
    deliveries
        .iter()
        .filter_map(|d| {
            let body: Value = serde_json::from_str(&d.body).expect("JSON body");
            (body["type"] == "user.deleted").then_some((body, d))
        })
        .collect()
}

#[tokio::test]
async fn a_persons_deletion_tells_each_client_with_a_webhook_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let hub = Hub::start(&HubConfig::new(&db_url, &receiver.url(), &secret)).await;
    let db = open_db(&db_url).await;

    // Alice logs in to both clients; only `site` has a webhook.
    hub.confirmed_login(SITE, "alice").await;
    hub.confirmed_login(OTHER, "alice").await;
    hub.confirmed_login(SITE, "alice").await;
    let confirmed = receiver.wait_for(2).await;
    let user_id = serde_json::from_str::<Value>(&confirmed[0].body).expect("JSON")["data"]["user"]
        ["id"]
        .as_str()
        .expect("user id")
        .to_owned();

    let code = hub.code("alice").await;
    let answer = hub
        .post("/api/v1/mp/account/delete", json!({"code": code}))
        .await;
    assert_eq!(answer, json!({"deleted": true, "user_id": user_id}));
    // Queued in the deletion's own transaction: there as soon as it answers.
    let queued: Vec<_> = events_of(&db, SITE)
        .await
        .into_iter()
        .filter(|e| e.event_type == "user.deleted")
        .collect();
    assert_eq!(queued.len(), 1, "one event for site: {queued:?}");
    assert!(
        events_of(&db, OTHER).await.is_empty(),
        "other has no webhook"
    );

    let all = receiver.wait_for(3).await;
    let deleted = deleted_events(&all);
    assert_eq!(deleted.len(), 1, "{all:?}");
    let (body, delivery) = &deleted[0];
    assert_eq!(delivery.id, queued[0].id);
    assert_eq!(delivery.status, 204);
    let mut keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["data", "timestamp", "type"]);
    assert_eq!(body["data"], json!({"user_id": user_id, "client_id": SITE}));
    chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339 timestamp");
    assert_signed(&secret, delivery);
    assert_signed(&secret, &all[0]);
    assert_verified(&secret, &[all[0].clone(), (*delivery).clone()]).await;

    // The same person again is a new user; their deletion is another event.
    hub.confirmed_login(SITE, "alice").await;
    let code = hub.code("alice").await;
    let again = hub
        .post("/api/v1/mp/account/delete", json!({"code": code}))
        .await;
    assert_ne!(again["user_id"], user_id.as_str());
    let all = receiver.wait_for(5).await;
    let deleted = deleted_events(&all);
    assert_eq!(deleted.len(), 2, "{all:?}");
    assert_eq!(deleted[1].0["data"]["user_id"], again["user_id"]);
    hub.stop().await;
}

#[tokio::test]
async fn the_operators_deletion_is_delivered_by_the_running_hub() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let cfg = HubConfig::new(&db_url, &receiver.url(), &secret);
    let hub = Hub::start(&cfg).await;
    hub.confirmed_login(SITE, "carol").await;
    let confirmed = receiver.wait_for(1).await;
    let user_id = serde_json::from_str::<Value>(&confirmed[0].body).expect("JSON")["data"]["user"]
        ["id"]
        .as_str()
        .expect("user id")
        .to_owned();

    let config = dir.path().join("config.toml");
    std::fs::write(&config, cfg.toml()).expect("write config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .arg("--config")
        .arg(&config)
        .args(["users", "delete", &user_id])
        .env_clear()
        .envs(crate::process::kept_env())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("users delete finishes")
        .expect("users delete runs");
    assert!(
        out.status.success(),
        "users delete failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 user.deleted webhook event(s) queued"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The hub's worker finds the event at its next poll.
    let all = receiver.wait_for(2).await;
    let deleted = deleted_events(&all);
    assert_eq!(deleted.len(), 1, "{all:?}");
    assert_eq!(
        deleted[0].0["data"],
        json!({"user_id": user_id, "client_id": SITE})
    );
    assert_signed(&secret, deleted[0].1);
    hub.stop().await;
}
