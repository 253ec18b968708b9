//! The document against the router: every documented operation is served,
//! no other method is served on a documented path, and every route
//! docs/api.md names under `/api/v1`, `/oauth2`, `/.well-known`, `/healthz`
//! and `/readyz` is documented.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_app;

use super::{Doc, operations};

/// What the router itself answers when no resource has the path, or the
/// resource lacks the method (`http::problem_bodies`).
const NO_PATH: &str = "no such path";

/// The methods a route may be declared with and a probe can send.
const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

/// The API's prefixes: each route under one of them is in the document.
const API: &[&str] = &[
    "/api/v1/",
    "/oauth2/",
    "/.well-known/",
    "/healthz",
    "/readyz",
];

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{scene_id}", &"0".repeat(32))
        .replace("{id}", "x")
}

async fn probe(app: &crate::helpers::TestApp, method: &str, path: &str) -> (u16, Value) {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let res = app
        .http
        .request(method, app.url(&concrete(path)))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let app = spawn_app().await;
    let doc = Doc::fetch(&app).await;
    let documented: Vec<(String, String)> = operations(&doc.json)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    assert!(!documented.is_empty());
    for (path, item) in doc.json["paths"].as_object().expect("paths") {
        for method in METHODS {
            let (status, body) = probe(&app, method, path).await;
            if item.get(*method).is_some() {
                assert!(
                    status != 405 && !(status == 404 && body["detail"] == NO_PATH),
                    "{method} {path} is documented but not served: {status} {body}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is served but not documented: {body}"
                );
            }
        }
    }

    // docs/api.md's routes under the API's prefixes are all in the document
    // (the authorize page is HTML, outside the JSON API).
    let api_md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let mut named = 0;
    for (i, _) in api_md.match_indices('`') {
        let rest = &api_md[i + 1..];
        let Some((method, tail)) = rest.split_once(' ') else {
            continue;
        };
        if !matches!(method, "GET" | "POST" | "PUT" | "DELETE" | "PATCH") {
            continue;
        }
        let end = tail.find(['`', '?', ' ', ':']).unwrap_or(tail.len());
        let path = &tail[..end];
        if !API.iter().any(|p| path.starts_with(p)) || path == "/oauth2/authorize" {
            continue;
        }
        named += 1;
        let method = method.to_lowercase();
        assert!(
            documented.contains(&(method.clone(), path.to_owned())),
            "docs/api.md names {method} {path}, which the document lacks"
        );
    }
    assert!(named >= 15, "only {named} routes found in docs/api.md");
}
