//! Reading answers: RFC 9457 problems, 200 JSON, any text.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// Checks an RFC 9457 answer: status, content type, the five fields and
/// `code`; returns the body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    let got = res.status();
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("problem body");
    assert_eq!(got.as_u16(), status, "status; body: {text}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "content type {content_type:?}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("problem body is JSON");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(body["detail"].as_str().is_some(), "{body}");
    body
}

/// GETs `url` and returns its text (any status): `/metrics` and the like.
pub async fn get_text(http: &reqwest::Client, url: String) -> String {
    http.get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .expect("text body")
}

/// Reads a 200 JSON answer, failing with the body otherwise.
pub async fn ok_json(res: Response) -> Value {
    let status = res.status();
    let text = res.text().await.expect("body");
    assert_eq!(status, StatusCode::OK, "body: {text}");
    serde_json::from_str(&text).expect("JSON body")
}
