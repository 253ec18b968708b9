//! Rolling a webhook secret (SPEC v3 "Reload and rotation"): with
//! `previous_webhook_secret` each delivery carries two signatures, the new
//! one first, and the stock verifier accepts it with either secret, so a
//! site can switch its verifier at any moment without a gap.

use serde_json::Value;

use super::receiver::{Delivery, Receiver, assert_verified, headers_of, stock_verify};
use super::{Hub, HubConfig, SITE, new_secret, sqlite_url};

/// `d` with only `signature` in its header.
fn signed_only(d: &Delivery, signature: &str) -> Delivery {
    Delivery {
        signature: signature.to_owned(),
        ..d.clone()
    }
}

/// Whether the stock verifier accepts `d` with `secret`; `None` when it
/// cannot run here.
async fn accepts(secret: &str, d: &Delivery) -> Option<bool> {
    let results = stock_verify(secret, &[(headers_of(d), d.body.clone())]).await?;
    Some(results[0]["ok"] == Value::Bool(true))
}

#[tokio::test]
async fn during_a_rotation_each_delivery_is_signed_with_both_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let (new, old, stranger) = (new_secret(), new_secret(), new_secret());
    let mut cfg = HubConfig::new(&sqlite_url(dir.path()), &receiver.url(), &new);
    cfg.previous_secret = Some(old.clone());
    let hub = Hub::start(&cfg).await;

    hub.confirmed_login(SITE, "rosa").await;
    hub.cancelled_login(SITE, "rosa").await;
    let seen = receiver.wait_for(2).await;
    for d in &seen {
        let parts: Vec<&str> = d.signature.split(' ').collect();
        assert_eq!(parts.len(), 2, "two signatures: {}", d.signature);
        assert!(
            parts.iter().all(|p| p.starts_with("v1,")),
            "{}",
            d.signature
        );
        assert_ne!(parts[0], parts[1]);
    }
    // A verifier holding the new secret, or still the old one, accepts
    // every delivery (and refuses a tampered body).
    assert_verified(&new, &seen).await;
    assert_verified(&old, &seen).await;

    // Each signature alone is the one of its secret: the new one first.
    let first = &seen[0];
    let parts: Vec<&str> = first.signature.split(' ').collect();
    let (new_only, old_only) = (signed_only(first, parts[0]), signed_only(first, parts[1]));
    assert_verified(&new, std::slice::from_ref(&new_only)).await;
    assert_verified(&old, std::slice::from_ref(&old_only)).await;
    if let Some(ok) = accepts(&old, &new_only).await {
        assert!(
            !ok,
            "the first signature is the new secret's, not the old one's"
        );
        assert_eq!(accepts(&new, &old_only).await, Some(false));
        assert_eq!(
            accepts(&stranger, first).await,
            Some(false),
            "another secret"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn without_a_previous_secret_a_delivery_has_one_signature() {
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(0, &[], 204);
    let secret = new_secret();
    let hub = Hub::start(&HubConfig::new(
        &sqlite_url(dir.path()),
        &receiver.url(),
        &secret,
    ))
    .await;
    hub.cancelled_login(SITE, "sam").await;
    let seen = receiver.wait_for(1).await;
    assert!(!seen[0].signature.contains(' '), "{}", seen[0].signature);
    assert_verified(&secret, &seen).await;
    hub.stop().await;
}
