//! The token endpoint's limits (docs/security.md "Secret guessing"): wrong
//! client secrets are throttled per client and source address, and token
//! requests spend the client's redemption allowance only once
//! authenticated.

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET, assert_problem, spawn_app_with,
};

use super::{REDIRECT, oauth_error};

/// A token request for a code that does not exist, from `ip` (through the
/// trusted proxy), as `id`:`secret` by Basic.
async fn token_from(
    app: &crate::helpers::TestApp,
    ip: &str,
    id: &str,
    secret: &str,
) -> reqwest::Response {
    let verifier = "v".repeat(43);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", "no-such-code"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ])
        .finish();
    app.http
        .post(app.url("/oauth2/token"))
        .header("X-Forwarded-For", ip)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .basic_auth(id, Some(secret))
        .body(body)
        .send()
        .await
        .expect("POST token")
}

#[tokio::test]
async fn wrong_secrets_at_the_token_endpoint_are_throttled_per_source() {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.redirect_uris = vec![REDIRECT.into()];
        cfg.rate_limit.auth_failures_per_minute = 3;
    })
    .await;
    let stranger = "198.51.100.66";
    // The allowance of wrong guesses (counted for 60 s from the first).
    for _ in 0..3 {
        oauth_error(
            token_from(&app, stranger, CLIENT_ID, "guess").await,
            401,
            "invalid_client",
        )
        .await;
    }
    // Past it, refused before the credentials are looked at.
    let res = token_from(&app, stranger, CLIENT_ID, "guess").await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_problem(res, 429, "rate_limited").await;
    // Even the right secret from there, so a guess cannot be confirmed...
    let res = token_from(&app, stranger, CLIENT_ID, CLIENT_SECRET).await;
    assert_problem(res, 429, "rate_limited").await;
    // ...while the site's own backend elsewhere goes on: its secret is
    // checked and only the made-up code is refused.
    let res = token_from(&app, "203.0.113.10", CLIENT_ID, CLIENT_SECRET).await;
    oauth_error(res, 400, "invalid_grant").await;
    // The stranger's failures count for this client only.
    let res = token_from(&app, stranger, OTHER_CLIENT_ID, OTHER_CLIENT_SECRET).await;
    oauth_error(res, 400, "invalid_grant").await;
}

#[tokio::test]
async fn token_requests_spend_the_clients_allowance_only_once_authenticated() {
    // One a minute: the allowance refills after 60 s, far past this test.
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1".into()];
        cfg.redirect_uris = vec![REDIRECT.into()];
        cfg.rate_limit.redeems_per_minute = 1;
    })
    .await;
    // Strangers with wrong secrets do not spend the site's allowance.
    for i in 0..2 {
        let res = token_from(&app, &format!("198.51.100.{i}"), CLIENT_ID, "guess").await;
        oauth_error(res, 401, "invalid_client").await;
    }
    let res = token_from(&app, "203.0.113.10", CLIENT_ID, CLIENT_SECRET).await;
    oauth_error(res, 400, "invalid_grant").await;
    // The allowance is per client, whatever the address.
    for ip in ["203.0.113.10", "203.0.113.11"] {
        let res = token_from(&app, ip, CLIENT_ID, CLIENT_SECRET).await;
        assert_problem(res, 429, "rate_limited").await;
    }
    // Another client has its own.
    let res = token_from(&app, "203.0.113.10", OTHER_CLIENT_ID, OTHER_CLIENT_SECRET).await;
    oauth_error(res, 400, "invalid_grant").await;
}
