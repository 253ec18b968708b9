//! The document itself: valid OpenAPI 3.1 covering every route and field.

use serde_json::{Value, json};

use crate::helpers::{PUBLIC_URL, spawn_app};

use super::expected::{REQUEST_FIELDS, REQUIRED_ANSWER_FIELDS, ROUTES, SPEC_CODES};
use super::{Doc, operations, refs};

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_and_covers_every_route() {
    let app = spawn_app().await;
    let doc = Doc::fetch(&app).await;
    let d = &doc.json;

    // A stock OpenAPI 3.1 parser reads it and accepts its version.
    let text = serde_json::to_string(d).expect("serialize");
    let parsed = oas3::from_json(&text).expect("oas3 parses the document");
    let version = parsed.validate_version().expect("an OpenAPI 3.1 version");
    assert_eq!((version.major, version.minor), (3, 1), "{version}");
    assert!(d["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")));
    assert_eq!(d["servers"][0]["url"], PUBLIC_URL);

    // Every $ref is local and resolves.
    let mut all = Vec::new();
    refs(d, "", &mut all);
    assert!(!all.is_empty());
    for (at, r) in &all {
        assert!(r.starts_with("#/components/"), "{at}: {r}");
        assert!(
            d.pointer(r.trim_start_matches('#')).is_some(),
            "{at}: {r} does not resolve"
        );
    }
    // And the stock parser resolves every operation's schemas too.
    assert_eq!(parsed.operations().count(), ROUTES.len());
    for (path, method, op) in parsed.operations() {
        for (status, answer) in op.responses(&parsed) {
            for (media, content) in answer.content {
                if let Some(schema) = &content.schema {
                    schema
                        .resolve(&parsed)
                        .unwrap_or_else(|e| panic!("{method} {path} {status} {media}: {e}"));
                }
            }
        }
        op.request_body(&parsed)
            .unwrap_or_else(|e| panic!("{method} {path} request body: {e}"));
    }

    // Every component schema is a valid JSON Schema 2020-12 schema.
    let schemas = d["components"]["schemas"].as_object().expect("schemas");
    for (name, schema) in schemas {
        let mut with_dialect = schema.clone();
        with_dialect["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        jsonschema::meta::validate(&with_dialect)
            .unwrap_or_else(|e| panic!("components/schemas/{name}: {e}"));
    }

    // Exactly the hub's routes, each with its method.
    let documented: std::collections::BTreeSet<(String, String)> =
        operations(d).into_iter().map(|(m, p, _)| (m, p)).collect();
    let expected: std::collections::BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, expected);

    // Every operation has a success answer; every error answer is the
    // problem document; 429 and 503 document Retry-After.
    for (method, path, op) in operations(d) {
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.as_str() == "101"),
            "{method} {path}: no success answer"
        );
        for (status, answer) in responses {
            let code: u16 = status.parse().expect("numeric status");
            if code < 400 {
                continue;
            }
            let content = answer["content"].as_object().expect("content");
            let (media, schema) =
                if path.starts_with("/oauth2/token") || path.starts_with("/oauth2/userinfo") {
                    // RFC 6749 5.2 / RFC 6750 3.1 for OAuth's own refusals;
                    // rate limits and outages stay problems.
                    match code {
                        400 | 401 => ("application/json", "#/components/schemas/OAuthErrorBody"),
                        _ => ("application/problem+json", "#/components/schemas/Problem"),
                    }
                } else {
                    ("application/problem+json", "#/components/schemas/Problem")
                };
            assert_eq!(
                content.keys().collect::<Vec<_>>(),
                [media],
                "{method} {path} {status}"
            );
            assert_eq!(
                content[media]["schema"]["$ref"], schema,
                "{method} {path} {status}"
            );
            if code == 429 || code == 503 {
                assert!(
                    answer["headers"]["Retry-After"].is_object(),
                    "{method} {path} {status}: Retry-After"
                );
            }
            assert!(
                answer["description"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
            );
        }
    }

    // The problem document: RFC 9457 members required, the codes of docs/api.md.
    let problem = &schemas["Problem"];
    doc.assert_required(
        "Problem",
        problem,
        &["type", "title", "status", "detail", "code"],
    );
    let codes: Vec<&str> = problem["properties"]["code"]["enum"]
        .as_array()
        .expect("code enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(codes, SPEC_CODES);

    // docs/api.md's fields are required in answers, named in requests.
    for (method, path, status, fields) in REQUIRED_ANSWER_FIELDS {
        let schema = doc.answer_schema(method, path, status, "application/json");
        doc.assert_required(&format!("{method} {path} {status}"), schema, fields);
    }
    for (path, required, optional) in REQUEST_FIELDS {
        let schema =
            &doc.operation("post", path)["requestBody"]["content"]["application/json"]["schema"];
        doc.assert_required(&format!("{path} request"), schema, required);
        let properties = &doc.resolve(schema)["properties"];
        for name in *optional {
            assert!(properties[name].is_object(), "{path} request: no {name}");
        }
    }
    // The token endpoint takes a form (RFC 6749 4.1.3), by Basic or in the form.
    let token_op = doc.operation("post", "/oauth2/token");
    let form = &token_op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    doc.assert_required(
        "token form",
        form,
        &["grant_type", "code", "redirect_uri", "code_verifier"],
    );
    for name in ["client_id", "client_secret"] {
        assert!(
            doc.resolve(form)["properties"][name].is_object(),
            "token form: {name}"
        );
    }
    assert_eq!(token_op["security"], json!([{"client_basic": []}, {}]));
    for method in ["get", "post"] {
        assert_eq!(
            doc.operation(method, "/oauth2/userinfo")["security"],
            json!([{"access_token": []}])
        );
    }
    let oauth_codes = &schemas["OAuthErrorBody"]["properties"]["error"]["enum"];
    for code in [
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
        "invalid_token",
    ] {
        assert!(
            oauth_codes
                .as_array()
                .is_some_and(|a| a.contains(&json!(code))),
            "{code}"
        );
    }

    // The WebSocket's pushes are the event schema, documented as a component.
    doc.assert_required(
        "BrowserEvent",
        &schemas["BrowserEvent"],
        &["type", "scene_id", "state"],
    );
    let ws = doc.operation("get", "/api/v1/scenes/{scene_id}/ws");
    assert!(ws["responses"]["101"].is_object(), "{ws}");
    let ws_text = ws["description"].as_str().expect("description");
    doc.assert_required(
        "WsAuthFrame",
        &schemas["WsAuthFrame"],
        &["type", "browser_token"],
    );
    for needle in [
        "auth",
        "browser_token",
        "4401",
        "4404",
        "4410",
        "1000",
        "1012",
    ] {
        assert!(ws_text.contains(needle), "ws description lacks {needle}");
    }

    // Auth schemes: Bearer browser token on events, Basic client on redeem,
    // the mini-program's token in the body of confirm and cancel.
    let schemes = &d["components"]["securitySchemes"];
    assert_eq!(schemes["browser_token"]["type"], "http");
    assert_eq!(schemes["browser_token"]["scheme"], "bearer");
    assert_eq!(schemes["client_basic"]["type"], "http");
    assert_eq!(schemes["client_basic"]["scheme"], "basic");
    assert_eq!(schemes["access_token"]["type"], "http");
    assert_eq!(schemes["access_token"]["scheme"], "bearer");
    assert_eq!(
        doc.operation("get", "/api/v1/scenes/{scene_id}/events")["security"],
        json!([{"browser_token": []}])
    );
    assert_eq!(
        doc.operation("post", "/api/v1/tickets/redeem")["security"],
        json!([{"client_basic": []}])
    );
    assert_eq!(schemes["mp_token"]["scheme"], "bearer");
    assert_eq!(
        doc.operation("post", "/api/v1/mp/avatar")["security"],
        json!([{"mp_token": []}])
    );
    for path in ["/api/v1/mp/confirm", "/api/v1/mp/cancel"] {
        let schema =
            &doc.operation("post", path)["requestBody"]["content"]["application/json"]["schema"];
        let mp_token = &doc.resolve(schema)["properties"]["mp_token"];
        assert!(
            mp_token["description"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{path}: mp_token is not described"
        );
    }
}
