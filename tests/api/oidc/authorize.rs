//! The authorize page and its completion: a whole login, languages,
//! mistakes answered by page or by redirect, malformed requests.

use reqwest::header::{CONTENT_TYPE, LOCATION};
use serde_json::json;

use crate::helpers::{
    CLIENT_ID, CLIENT_SECRET, OTHER_CLIENT_ID, PUBLIC_URL, assert_problem, ok_json,
};

use super::{
    authorize, complete, exchange, login, no_follow, oauth_error, oidc_app, page_data, params,
    pkce, query, redirected, token, userinfo, verify, with,
};

#[tokio::test]
async fn a_login_gives_a_verified_id_token_and_userinfo() {
    let app = oidc_app().await;
    let p = pkce();
    let res = authorize(&app, &params(&p, "st-1", "n-1")).await;
    let (_, csp, html) = page_data(res).await;
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    assert!(html.contains("Test site"), "the page names the client");
    assert!(
        html.contains("<html lang=\"en\">"),
        "English for an English browser"
    );
    let (q, user_id) = login(&app, &params(&p, "st-1", "n-1")).await;
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], PUBLIC_URL);
    let answer = ok_json(exchange(&app, &q["code"], &p).await).await;
    assert_eq!(answer["token_type"], "Bearer");
    // docs/api.md: the access token lives 600 s.
    assert_eq!(answer["expires_in"], 600, "{answer}");
    assert_eq!(answer["scope"], "openid profile");
    let claims = verify(&app, answer["id_token"].as_str().expect("id_token")).await;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["picture"], "https://img.test/a.png");
    let (iat, exp, auth_time) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
        claims["auth_time"].as_i64().expect("auth_time"),
    );
    assert!(exp > iat && auth_time <= iat, "{claims}");
    let info = ok_json(userinfo(&app, answer["access_token"].as_str().expect("at")).await).await;
    assert_eq!(info["sub"], user_id.as_str());
    assert_eq!(info["name"], "Alice");
    // The same sub as the ticket API would give: the redeem's user.id.
    assert!(!user_id.is_empty());
}

#[tokio::test]
async fn the_page_follows_the_browsers_language() {
    let app = oidc_app().await;
    let p = pkce();
    for (accept, lang) in [
        (None, "zh-CN"),
        (Some("zh-CN,zh;q=0.9,en;q=0.8"), "zh-CN"),
        (Some("en-GB,en;q=0.9"), "en"),
        (Some("fr-FR,en;q=0.5,zh;q=0.4"), "en"),
    ] {
        let mut req = no_follow()
            .get(app.url("/oauth2/authorize"))
            .query(&params(&p, "s", "n"));
        if let Some(a) = accept {
            req = req.header("Accept-Language", a);
        }
        let html = req.send().await.expect("page").text().await.expect("html");
        assert!(
            html.contains(&format!("<html lang=\"{lang}\">")),
            "{accept:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_client_or_redirect_uri_gets_a_page_and_no_redirect() {
    let app = oidc_app().await;
    let p = pkce();
    let good = params(&p, "s", "n");
    for ps in [
        with(good.clone(), "client_id", Some("nobody")),
        with(good.clone(), "client_id", None),
        // A client without redirect_uris cannot use OpenID Connect.
        with(good.clone(), "client_id", Some(OTHER_CLIENT_ID)),
        with(
            good.clone(),
            "redirect_uri",
            Some("https://site.test/callback/"),
        ),
        with(
            good.clone(),
            "redirect_uri",
            Some("https://evil.test/callback"),
        ),
        with(good.clone(), "redirect_uri", None),
    ] {
        let res = authorize(&app, &ps).await;
        assert_eq!(res.status(), 400, "{ps:?}");
        assert!(res.headers().get(LOCATION).is_none(), "{ps:?}");
        let ct = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        assert!(ct.is_some_and(|c| c.starts_with("text/html")), "{ct:?}");
        assert!(res.headers().get("content-security-policy").is_some());
    }
}

#[tokio::test]
async fn other_mistakes_redirect_with_error_state_and_iss() {
    let app = oidc_app().await;
    let p = pkce();
    let good = params(&p, "keep-me", "n");
    let cases = [
        (
            with(good.clone(), "response_type", Some("token")),
            "unsupported_response_type",
        ),
        (with(good.clone(), "response_type", None), "invalid_request"),
        (
            with(good.clone(), "scope", Some("profile")),
            "invalid_scope",
        ),
        (with(good.clone(), "scope", None), "invalid_scope"),
        (
            with(good.clone(), "code_challenge", None),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge_method", None),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge_method", Some("plain")),
            "invalid_request",
        ),
        (
            with(good.clone(), "code_challenge", Some("short")),
            "invalid_request",
        ),
        (with(good.clone(), "prompt", Some("none")), "login_required"),
    ];
    for (ps, error) in cases {
        let q = redirected(&authorize(&app, &ps).await);
        assert_eq!(q.get("error").map(String::as_str), Some(error), "{ps:?}");
        assert_eq!(
            q.get("state").map(String::as_str),
            Some("keep-me"),
            "{ps:?}"
        );
        assert_eq!(q.get("iss").map(String::as_str), Some(PUBLIC_URL), "{ps:?}");
    }
    // A repeated parameter is invalid_request too.
    let mut twice = good.clone();
    twice.push(("scope".into(), "openid".into()));
    let q = redirected(&authorize(&app, &twice).await);
    assert_eq!(q["error"], "invalid_request");
}

#[tokio::test]
async fn cancelling_on_the_phone_sends_access_denied_back() {
    let app = oidc_app().await;
    let p = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&p, "st-c", "n")).await).await;
    let to = ok_json(complete(&app, &json!({"handle": data["handle"], "cancelled": true})).await)
        .await["redirect_to"]
        .as_str()
        .expect("redirect_to")
        .to_owned();
    let q = query(&to);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-c");
    assert_eq!(q["iss"], PUBLIC_URL);
    assert!(!q.contains_key("code"));
    // The request is over: the handle does not work again.
    let again = complete(&app, &json!({"handle": data["handle"], "cancelled": true})).await;
    assert_problem(again, 400, "invalid_request").await;
}

#[tokio::test]
async fn the_hub_origin_makes_scenes_only_for_openid_clients() {
    let app = oidc_app().await;
    let res = app
        .post_scene(&json!({"client_id": OTHER_CLIENT_ID}), Some(PUBLIC_URL))
        .await;
    assert_problem(res, 403, "origin_not_allowed").await;
    let res = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(PUBLIC_URL))
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn malformed_requests_get_clear_answers_and_change_nothing() {
    let app = oidc_app().await;
    // The page's completion: unknown handle, neither ticket nor cancel,
    // not JSON, a foreign Origin.
    let empty = database_dump(&app).await;
    let res = complete(&app, &json!({"handle": "nope", "cancelled": true})).await;
    assert_problem(res, 400, "invalid_request").await;
    assert_eq!(database_dump(&app).await, empty, "an unknown handle");
    let p = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&p, "s", "n")).await).await;
    let pending = database_dump(&app).await;
    let res = complete(&app, &json!({"handle": data["handle"]})).await;
    assert_problem(res, 400, "invalid_request").await;
    let res = complete(
        &app,
        &json!({"handle": data["handle"], "ticket": "forged.ticket"}),
    )
    .await;
    assert_problem(res, 400, "invalid_ticket").await;
    let res = app
        .http
        .post(app.url("/oauth2/authorize/complete"))
        .header("Origin", "https://evil.test")
        .json(&json!({"handle": data["handle"], "cancelled": true}))
        .send()
        .await
        .expect("POST complete");
    assert_problem(res, 403, "origin_not_allowed").await;
    let res = app
        .http
        .post(app.url("/oauth2/authorize/complete"))
        .header(CONTENT_TYPE, "text/plain")
        .body("handle")
        .send()
        .await
        .expect("POST complete");
    assert_eq!(res.status(), 415);
    // None of that changed a row or ended the request: cancelling it still
    // works once.
    assert_eq!(database_dump(&app).await, pending);
    let res = complete(&app, &json!({"handle": data["handle"], "cancelled": true})).await;
    assert_eq!(res.status(), 200);
    let cancelled = database_dump(&app).await;
    assert_ne!(cancelled, pending, "the cancel is recorded");

    // The token endpoint: JSON instead of a form, a repeated parameter, a
    // body over 8 KiB.
    let res = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .expect("POST token");
    oauth_error(res, 400, "invalid_request").await;
    let twice = [
        ("grant_type", "authorization_code"),
        ("code", "a"),
        ("code", "b"),
    ];
    oauth_error(
        token(&app, &twice, Some((CLIENT_ID, CLIENT_SECRET))).await,
        400,
        "invalid_request",
    )
    .await;
    let big = "x".repeat(9 * 1024);
    let res = token(
        &app,
        &[("code", big.as_str())],
        Some((CLIENT_ID, CLIENT_SECRET)),
    )
    .await;
    assert_eq!(res.status(), 413);
    assert_eq!(database_dump(&app).await, cancelled, "the token endpoint");
}

/// Every row of every table of the hub's SQLite database, as text: equal
/// dumps mean nothing changed.
async fn database_dump(app: &crate::helpers::TestApp) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db().await;
    let backend = db.get_database_backend();
    let rows = |sql: String| {
        let db = &db;
        async move {
            db.query_all_raw(Statement::from_string(backend, sql))
                .await
                .expect("query")
        }
    };
    let tables: Vec<String> = rows(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name"
            .into(),
    )
    .await
    .iter()
    .map(|r| r.try_get::<String>("", "name").expect("name"))
    .collect();
    assert!(tables.len() > 5, "{tables:?}");
    let mut dump = Vec::new();
    for table in tables {
        let columns: Vec<String> = rows(format!("SELECT name FROM pragma_table_info('{table}')"))
            .await
            .iter()
            .map(|r| r.try_get::<String>("", "name").expect("column"))
            .map(|c| format!("quote(\"{c}\")"))
            .collect();
        let sql = format!(
            "SELECT {} AS r FROM \"{table}\" ORDER BY 1",
            columns.join(" || '|' || ")
        );
        for row in rows(sql).await {
            dump.push(format!(
                "{table}: {}",
                row.try_get::<String>("", "r").expect("r")
            ));
        }
    }
    let _ = db.close().await;
    dump
}
