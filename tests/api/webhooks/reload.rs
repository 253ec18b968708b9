//! A reload that gives a client a webhook: the delivery worker, which did
//! not run (no client had a webhook), starts, and the next login's event
//! arrives signed with the new secret. A person's deletion after a reload
//! follows the settings in force: `user.deleted` goes to a client that the
//! reload gave a webhook, and not to one whose webhook it took away.

use scanlogin::Application;
use scanlogin::startup::ReloadOutcome;
use scanlogin::startup::Reloader;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

use super::receiver::{Receiver, assert_verified};
use super::{Hub, HubConfig, SITE, events_of, new_secret, open_db, sqlite_url};

/// Writes `cfg` to `file` and reloads it into the hub; the reload must apply.
async fn reload_with(reloader: &Arc<Reloader>, file: &Path, cfg: &HubConfig) {
    std::fs::write(file, cfg.toml()).expect("config file");
    let (reloader, file) = (reloader.clone(), file.to_owned());
    let outcome = tokio::task::spawn_blocking(move || reloader.reload(&file))
        .await
        .expect("reload");
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_webhook_added_by_a_reload_is_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let with_hook = HubConfig::new(&db_url, &receiver.url(), &secret);
    let mut without = HubConfig::new(&db_url, &receiver.url(), &secret);
    without.webhook = None;
    let app = Application::build(without.settings())
        .await
        .expect("hub builds");
    let reloader = app.reloader();
    let hub = Hub::run(app);
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "ada").await;
    assert!(
        events_of(&db, SITE).await.is_empty(),
        "no webhook yet, no event"
    );

    let file = dir.path().join("hub.toml");
    std::fs::write(&file, with_hook.toml()).expect("config file");
    let outcome = tokio::task::spawn_blocking(move || reloader.reload(&file))
        .await
        .expect("reload");
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );

    let (scene, _) = hub.confirmed_login(SITE, "bob").await;
    let seen = receiver.wait_for(1).await;
    assert_eq!(seen.len(), 1, "only the login after the reload: {seen:?}");
    assert!(seen[0].body.contains(&scene), "{}", seen[0].body);
    assert_verified(&secret, &seen).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_deletion_after_a_reload_that_adds_a_webhook_is_delivered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let mut with_hook = HubConfig::new(&db_url, &receiver.url(), &secret);
    let mut without = HubConfig::new(&db_url, &receiver.url(), &secret);
    without.webhook = None;
    // The worker polls once a minute: only the deletion's wake-up can bring
    // the event within the receiver's wait.
    with_hook.poll_interval_ms = 60_000;
    without.poll_interval_ms = 60_000;
    let app = Application::build(without.settings())
        .await
        .expect("hub builds");
    let reloader = app.reloader();
    let hub = Hub::run(app);
    let db = open_db(&db_url).await;

    // Ada logs in to `site` while it has no webhook: nothing is queued.
    hub.confirmed_login(SITE, "ada").await;
    assert!(events_of(&db, SITE).await.is_empty(), "no webhook yet");
    let code = hub.code("ada").await;
    let account = hub.post("/api/v1/mp/account", json!({"code": code})).await;
    let user_id = account["user"]["id"].as_str().expect("user id").to_owned();
    assert_eq!(account["clients"][0]["client_id"], SITE, "{account}");

    reload_with(&reloader, &dir.path().join("hub.toml"), &with_hook).await;

    // Her deletion reads the reloaded settings and wakes the worker the
    // reload started, which delivers the event.
    let code = hub.code("ada").await;
    let answer = hub
        .post("/api/v1/mp/account/delete", json!({"code": code}))
        .await;
    assert_eq!(answer, json!({"deleted": true, "user_id": user_id}));
    let queued = events_of(&db, SITE).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].event_type, "user.deleted");
    let seen = receiver.wait_for(1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].id, queued[0].id);
    let body: Value = serde_json::from_str(&seen[0].body).expect("JSON body");
    assert_eq!(body["type"], "user.deleted");
    assert_eq!(body["data"], json!({"user_id": user_id, "client_id": SITE}));
    assert_verified(&secret, &seen).await;
    hub.stop().await;
}

#[tokio::test]
async fn a_deletion_after_a_reload_that_removes_the_webhook_queues_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let secret = new_secret();
    let db_url = sqlite_url(dir.path());
    let with_hook = HubConfig::new(&db_url, &receiver.url(), &secret);
    let mut without = HubConfig::new(&db_url, &receiver.url(), &secret);
    without.webhook = None;
    let app = Application::build(with_hook.settings())
        .await
        .expect("hub builds");
    let reloader = app.reloader();
    let hub = Hub::run(app);
    let db = open_db(&db_url).await;

    hub.confirmed_login(SITE, "bea").await;
    let confirmed = receiver.wait_for(1).await;
    assert_eq!(confirmed.len(), 1, "{confirmed:?}");

    reload_with(&reloader, &dir.path().join("hub.toml"), &without).await;

    let code = hub.code("bea").await;
    let answer = hub
        .post("/api/v1/mp/account/delete", json!({"code": code}))
        .await;
    assert_eq!(answer["deleted"], true, "{answer}");
    let kinds: Vec<String> = events_of(&db, SITE)
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(
        kinds,
        ["login.confirmed"],
        "no user.deleted after the reload"
    );
    hub.stop().await;
}
