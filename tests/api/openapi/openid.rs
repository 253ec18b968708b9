//! Real OpenID Connect answers, checked against the document.

use reqwest::Response;
use serde_json::json;

use crate::helpers::{CLIENT_ID, PUBLIC_URL};

use super::Doc;

#[tokio::test]
async fn real_openid_connect_answers_match_the_document() {
    use crate::oidc::{
        REDIRECT, authorize, complete, exchange, login, oidc_app, page_data, params, pkce, token,
    };
    let app = oidc_app().await;
    let doc = Doc::fetch(&app).await;

    let res = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("GET discovery");
    assert_eq!(res.status(), 200);
    let discovery = doc
        .conforms(res, "get", "/.well-known/openid-configuration")
        .await;
    assert_eq!(discovery["issuer"], PUBLIC_URL);
    let res = app
        .http
        .get(app.url("/oauth2/jwks"))
        .send()
        .await
        .expect("GET jwks");
    assert_eq!(res.status(), 200);
    let keys = doc.conforms(res, "get", "/oauth2/jwks").await;
    assert!(!keys["keys"].as_array().expect("keys").is_empty());

    // A whole login, then the code for tokens (200) and the claims (200).
    let p = pkce();
    let (back, _user_id) = login(&app, &params(&p, "st", "nonce-1")).await;
    let code = back.get("code").expect("code");
    let res = exchange(&app, code, &p).await;
    assert_eq!(res.status(), 200);
    let tokens = doc.conforms(res, "post", "/oauth2/token").await;
    let access = tokens["access_token"].as_str().expect("access_token");
    for method in ["get", "post"] {
        let req = match method {
            "get" => app.http.get(app.url("/oauth2/userinfo")),
            _ => app.http.post(app.url("/oauth2/userinfo")),
        };
        let res = req.bearer_auth(access).send().await.expect("userinfo");
        assert_eq!(res.status(), 200);
        let claims = doc.conforms(res, method, "/oauth2/userinfo").await;
        assert_eq!(claims["name"], "Alice");
    }

    // The page's completion when the phone cancelled (200).
    let q = pkce();
    let (data, _, _) = page_data(authorize(&app, &params(&q, "st2", "nonce-2")).await).await;
    let res = complete(&app, &json!({"handle": data["handle"], "cancelled": true})).await;
    assert_eq!(res.status(), 200);
    let done = doc
        .conforms(res, "post", "/oauth2/authorize/complete")
        .await;
    assert!(
        done["redirect_to"]
            .as_str()
            .is_some_and(|to| to.starts_with(REDIRECT)),
        "{done}"
    );

    // Refusals: RFC 6749 bodies on token and userinfo, problems elsewhere.
    let reused = exchange(&app, code, &p).await;
    let wrong_secret = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", "whatever"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &p.verifier),
        ],
        Some((CLIENT_ID, "wrong-secret")),
    )
    .await;
    let bad_grant_type = token(
        &app,
        &[("grant_type", "password")],
        Some((CLIENT_ID, crate::helpers::CLIENT_SECRET)),
    )
    .await;
    let bad_access = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("userinfo");
    let no_access = app
        .http
        .get(app.url("/oauth2/userinfo"))
        .send()
        .await
        .expect("userinfo");
    let unknown_handle = complete(&app, &json!({"handle": "nope", "cancelled": true})).await;
    let cases: Vec<(Response, &str, &str, u16, &str, &str)> = vec![
        (
            reused,
            "post",
            "/oauth2/token",
            400,
            "error",
            "invalid_grant",
        ),
        (
            wrong_secret,
            "post",
            "/oauth2/token",
            401,
            "error",
            "invalid_client",
        ),
        (
            bad_grant_type,
            "post",
            "/oauth2/token",
            400,
            "error",
            "unsupported_grant_type",
        ),
        (
            bad_access,
            "get",
            "/oauth2/userinfo",
            401,
            "error",
            "invalid_token",
        ),
        (
            no_access,
            "get",
            "/oauth2/userinfo",
            401,
            "error",
            "invalid_request",
        ),
        (
            unknown_handle,
            "post",
            "/oauth2/authorize/complete",
            400,
            "code",
            "invalid_request",
        ),
    ];
    for (res, method, path, status, field, expected) in cases {
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        let body = doc.conforms(res, method, path).await;
        assert_eq!(body[field], expected, "{method} {path}: {body}");
    }
}
