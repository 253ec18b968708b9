//! A reload that gives a client a webhook: the delivery worker, which did
//! not run (no client had a webhook), starts, and the next login's event
//! arrives signed with the new secret.

use scanlogin::Application;
use scanlogin::startup::ReloadOutcome;

use super::receiver::{Receiver, assert_verified};
use super::{Hub, HubConfig, SITE, events_of, new_secret, open_db, sqlite_url};

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
