//! `GET /openapi.json`: a valid OpenAPI 3.1 document (parsed by the stock
//! `oas3` crate, every `$ref` resolving, every component schema valid JSON
//! Schema 2020-12) covering every route of the hub, with the fields docs/api.md
//! fixes marked required; and real answers of a running hub, through a whole
//! login and a row of refusals, validated against the schemas it documents
//! (with the `jsonschema` crate, objects closed to undocumented fields).

use reqwest::Response;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Map, Value, json};

use crate::helpers::{
    CLIENT_ID, ORIGIN, PUBLIC_URL, TestApp, session_key, spawn_app, spawn_app_with, unique,
};

/// Every route of the hub's JSON API with its method, as the router has it.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/scenes"),
    ("get", "/api/v1/scenes/{scene_id}/qrcode"),
    ("get", "/api/v1/scenes/{scene_id}/events"),
    ("get", "/api/v1/scenes/{scene_id}/ws"),
    ("post", "/api/v1/mp/scan"),
    ("post", "/api/v1/mp/confirm"),
    ("post", "/api/v1/mp/cancel"),
    ("post", "/api/v1/mp/login"),
    ("post", "/api/v1/mp/avatar"),
    ("get", "/api/v1/avatars/{id}"),
    ("post", "/api/v1/tickets/redeem"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/.well-known/openid-configuration"),
    ("post", "/oauth2/authorize/complete"),
    ("post", "/oauth2/token"),
    ("get", "/oauth2/userinfo"),
    ("post", "/oauth2/userinfo"),
    ("get", "/oauth2/jwks"),
];

/// The error codes of docs/api.md "Errors".
const SPEC_CODES: &[&str] = &[
    "invalid_request",
    "unknown_client",
    "origin_not_allowed",
    "rate_limited",
    "scene_not_found",
    "scene_expired",
    "scene_final",
    "scene_taken",
    "invalid_token",
    "unauthorized",
    "wechat_error",
    "decrypt_failed",
    "watermark_mismatch",
    "signature_mismatch",
    "identity_mismatch",
    "invalid_ticket",
    "unavailable",
    "internal",
];

/// The fields docs/api.md fixes in each answer, which the document must mark
/// required (`a.b`: field `b` of the object in field `a`; `a[]`: the items
/// of array `a`).
const REQUIRED_ANSWER_FIELDS: &[(&str, &str, &str, &[&str])] = &[
    (
        "post",
        "/api/v1/scenes",
        "201",
        &[
            "scene_id",
            "browser_token",
            "state",
            "expires_at",
            "expires_in",
            "qrcode_url",
            "ws_url",
            "events_url",
            "app_id",
        ],
    ),
    ("post", "/api/v1/mp/avatar", "201", &["avatar_url"]),
    (
        "get",
        "/api/v1/scenes/{scene_id}/events",
        "200",
        &["type", "scene_id", "state"],
    ),
    (
        "post",
        "/api/v1/mp/scan",
        "200",
        &[
            "mp_token",
            "state",
            "expires_at",
            "client",
            "client.id",
            "client.name",
            "client.origin",
            "browser",
            "browser.ip",
            "browser.user_agent",
        ],
    ),
    ("post", "/api/v1/mp/confirm", "200", &["state", "user_id"]),
    ("post", "/api/v1/mp/cancel", "200", &["state"]),
    (
        "post",
        "/api/v1/mp/login",
        "200",
        &["user_id", "id_token", "expires_in"],
    ),
    (
        "post",
        "/api/v1/tickets/redeem",
        "200",
        &[
            "user",
            "user.id",
            "user.unionid",
            "user.nickname",
            "user.avatar_url",
            "user.identities",
            "user.identities[].app_id",
            "user.identities[].openid",
            "scene_id",
            "client_id",
            "confirmed_at",
        ],
    ),
    ("get", "/healthz", "200", &["status"]),
    (
        "get",
        "/.well-known/openid-configuration",
        "200",
        &[
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "response_types_supported",
            "grant_types_supported",
            "code_challenge_methods_supported",
            "token_endpoint_auth_methods_supported",
            "id_token_signing_alg_values_supported",
            "scopes_supported",
            "subject_types_supported",
            "authorization_response_iss_parameter_supported",
        ],
    ),
    (
        "post",
        "/oauth2/token",
        "200",
        &[
            "access_token",
            "token_type",
            "expires_in",
            "id_token",
            "scope",
        ],
    ),
    (
        "post",
        "/oauth2/token",
        "400",
        &["error", "error_description"],
    ),
    (
        "post",
        "/oauth2/token",
        "401",
        &["error", "error_description"],
    ),
    ("get", "/oauth2/userinfo", "200", &["sub"]),
    ("get", "/oauth2/userinfo", "401", &["error"]),
    (
        "get",
        "/oauth2/jwks",
        "200",
        &["keys", "keys[].kty", "keys[].kid", "keys[].n", "keys[].e"],
    ),
    (
        "post",
        "/oauth2/authorize/complete",
        "200",
        &["redirect_to"],
    ),
    ("get", "/readyz", "200", &["status"]),
];

/// The request fields docs/api.md makes mandatory, and the optional ones it names.
const REQUEST_FIELDS: &[(&str, &[&str], &[&str])] = &[
    ("/api/v1/scenes", &["client_id"], &[]),
    ("/api/v1/mp/scan", &["scene_id", "code"], &["app_id"]),
    (
        "/api/v1/mp/confirm",
        &["scene_id"],
        &[
            "mp_token",
            "code",
            "app_id",
            "encrypted_data",
            "iv",
            "raw_data",
            "signature",
            "profile",
            "phone_code",
        ],
    ),
    (
        "/api/v1/mp/cancel",
        &["scene_id"],
        &["mp_token", "code", "app_id"],
    ),
    ("/api/v1/mp/login", &["code"], &["app_id"]),
    ("/api/v1/tickets/redeem", &["ticket"], &[]),
    (
        "/oauth2/authorize/complete",
        &["handle"],
        &["ticket", "cancelled"],
    ),
];

/// The document as served, and what the checks need from it.
struct Doc {
    json: Value,
}

impl Doc {
    async fn fetch(app: &TestApp) -> Self {
        let res = app
            .http
            .get(app.url("/openapi.json"))
            .send()
            .await
            .expect("GET /openapi.json");
        assert_eq!(res.status(), 200);
        assert!(
            header(&res, CONTENT_TYPE.as_str()).starts_with("application/json"),
            "{res:?}"
        );
        assert_eq!(header(&res, "access-control-allow-origin"), "*");
        Self {
            json: res.json().await.expect("the document is JSON"),
        }
    }

    fn operation(&self, method: &str, path: &str) -> &Value {
        let op = &self.json["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        op
    }

    /// Follows a local `$ref` (and the non-null branch of a nullable
    /// `oneOf`) to the schema it names.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let target = self
                .json
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("{r} does not resolve"));
            return self.resolve(target);
        }
        if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
            let not_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b.get("type") != Some(&json!("null")))
                .collect();
            if let [only] = not_null.as_slice() {
                return self.resolve(only);
            }
        }
        schema
    }

    /// The documented schema of an answer, for its media type.
    fn answer_schema(&self, method: &str, path: &str, status: &str, media: &str) -> &Value {
        let answer = &self.operation(method, path)["responses"][status];
        assert!(
            answer.is_object(),
            "{method} {path}: status {status} is not documented"
        );
        let schema = &answer["content"][media]["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {status}: {media} is not documented: {answer}"
        );
        schema
    }

    /// Asserts that every dotted field is required in `schema`.
    fn assert_required(&self, what: &str, schema: &Value, fields: &[&str]) {
        for dotted in fields {
            let mut current = self.resolve(schema);
            for part in dotted.split('.') {
                let (name, items) = match part.strip_suffix("[]") {
                    Some(n) => (n, true),
                    None => (part, false),
                };
                let required = current["required"].as_array().cloned().unwrap_or_default();
                assert!(
                    required.contains(&json!(name)),
                    "{what}: {dotted} is not required in {current}"
                );
                let property = &current["properties"][name];
                assert!(property.is_object(), "{what}: no property {dotted}");
                current = self.resolve(property);
                if items {
                    current = self.resolve(&current["items"]);
                }
            }
        }
    }

    /// A validator of `schema` with the document's components embedded
    /// and every documented object closed: a field the document does not
    /// name (a renamed or added field) fails.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut components = self.json["components"].clone();
        close_objects(&mut components);
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": components,
            "allOf": [schema],
        });
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}: {schema}"))
    }

    fn assert_valid(&self, what: &str, schema: &Value, instance: &Value) {
        let validator = self.validator(schema);
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: {instance} does not match {schema}: {errors:#?}"
        );
    }

    /// Reads a real answer and checks it against the document: its status is
    /// documented for the operation, its media type too, its body matches the
    /// schema and the documented headers are present. Returns the body.
    async fn conforms(&self, res: Response, method: &str, path: &str) -> Value {
        let status = res.status().as_u16().to_string();
        let media = header(&res, CONTENT_TYPE.as_str())
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let documented_headers: Vec<String> =
            self.operation(method, path)["responses"][&status]["headers"]
                .as_object()
                .map(|h| h.keys().cloned().collect())
                .unwrap_or_default();
        for name in &documented_headers {
            assert!(
                res.headers().contains_key(name.as_str()),
                "{method} {path} {status}: header {name} is documented but missing"
            );
        }
        let text = res.text().await.expect("body");
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e}): {text}"));
        let schema = self.answer_schema(method, path, &status, &media);
        self.assert_valid(&format!("{method} {path} {status}"), schema, &body);
        body
    }

    /// Checks a refusal against the document and returns its `code`.
    async fn problem(&self, res: Response, method: &str, path: &str, status: u16) -> String {
        assert_eq!(res.status().as_u16(), status, "{method} {path}");
        let body = self.conforms(res, method, path).await;
        body["code"].as_str().expect("code").to_owned()
    }
}

fn header(res: &Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// `additionalProperties: false` on every object schema with properties
/// that does not say otherwise.
fn close_objects(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Every `$ref` in the document, with where it is.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.push((at.to_owned(), r.to_owned()));
                }
                refs(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn operations(doc: &Value) -> Vec<(String, String, &Map<String, Value>)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if let Some(op) = op.as_object() {
                out.push((method.clone(), path.clone(), op));
            }
        }
    }
    out
}

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

#[tokio::test]
async fn real_answers_of_a_whole_login_match_the_document() {
    let app = spawn_app().await;
    let doc = Doc::fetch(&app).await;

    for path in ["/healthz", "/readyz"] {
        let res = app.http.get(app.url(path)).send().await.expect("GET");
        assert_eq!(res.status(), 200);
        doc.conforms(res, "get", path).await;
    }

    // Create (201), the code image (its media type is documented).
    let res = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
        .await;
    assert_eq!(res.status(), 201);
    let created = doc.conforms(res, "post", "/api/v1/scenes").await;
    let scene_id = created["scene_id"].as_str().expect("scene_id").to_owned();
    let token = created["browser_token"].as_str().expect("token").to_owned();
    let scene = crate::helpers::Scene {
        id: scene_id.clone(),
        browser_token: token,
        body: created,
    };
    let res = app.qrcode(&scene_id).await;
    assert_eq!(res.status(), 200);
    let media = header(&res, CONTENT_TYPE.as_str());
    let qrcode = doc.operation("get", "/api/v1/scenes/{scene_id}/qrcode");
    assert!(
        qrcode["responses"]["200"]["content"][&media].is_object(),
        "{media} is not documented: {qrcode}"
    );

    // The WebSocket's pushes and the long-poll's answers are the event schema.
    let event_schema = json!({"$ref": "#/components/schemas/BrowserEvent"});
    // The auth frame the widget (and `ws_connect`) sends is the documented one.
    doc.assert_valid(
        "ws auth frame",
        &json!({"$ref": "#/components/schemas/WsAuthFrame"}),
        &json!({"type": "auth", "browser_token": scene.browser_token}),
    );
    let mut ws = app.ws_connect(&scene).await;
    doc.assert_valid("ws waiting", &event_schema, &ws.next_event().await);
    let events_path = "/api/v1/scenes/{scene_id}/events";
    let waiting = doc
        .conforms(app.events(&scene, None, 0).await, "get", events_path)
        .await;
    assert_eq!(waiting["state"], "waiting");

    // Scan (200) with a login code of the fake WeChat.
    let code = unique("code");
    app.fake
        .add_code(&code, &unique("o"), Some(&unique("u")), &session_key());
    let res = app.scan(&scene_id, &code).await;
    assert_eq!(res.status(), 200);
    let scan = doc.conforms(res, "post", "/api/v1/mp/scan").await;
    let mp_token = scan["mp_token"].as_str().expect("mp_token");
    doc.assert_valid("ws scanned", &event_schema, &ws.next_event().await);

    // Avatar upload (201) with the mp token as Bearer, and the image (200).
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::new(8, 8))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("PNG");
    let res = app
        .http
        .post(app.url("/api/v1/mp/avatar"))
        .header(CONTENT_TYPE, "image/png")
        .bearer_auth(mp_token)
        .body(png)
        .send()
        .await
        .expect("POST avatar");
    assert_eq!(res.status(), 201);
    let uploaded = doc.conforms(res, "post", "/api/v1/mp/avatar").await;
    let avatar_url = uploaded["avatar_url"].as_str().expect("avatar_url");
    let avatar_path = avatar_url.strip_prefix(PUBLIC_URL).expect("a hub URL");
    let res = app
        .http
        .get(app.url(avatar_path))
        .send()
        .await
        .expect("GET avatar");
    assert_eq!(res.status(), 200);
    let media = header(&res, CONTENT_TYPE.as_str());
    assert!(
        doc.operation("get", "/api/v1/avatars/{id}")["responses"]["200"]["content"][&media]
            .is_object(),
        "{media}"
    );

    // Confirm (200) with a profile; the confirmed event with ticket and user.
    let res = app
        .confirm(&json!({
            "scene_id": scene_id, "mp_token": mp_token,
            "profile": {"nickname": "Alice", "avatar_url": "https://img.example/a.png"},
        }))
        .await;
    assert_eq!(res.status(), 200);
    let confirmed = doc.conforms(res, "post", "/api/v1/mp/confirm").await;
    assert_eq!(confirmed["state"], "confirmed");
    let pushed = ws.next_event().await;
    doc.assert_valid("ws confirmed", &event_schema, &pushed);
    let polled = doc
        .conforms(app.events(&scene, None, 0).await, "get", events_path)
        .await;
    assert_eq!(polled["state"], "confirmed");
    assert_eq!(polled["user"]["nickname"], "Alice");

    // Redeem (200).
    let ticket = polled["ticket"].as_str().expect("ticket");
    let res = app.redeem(ticket).await;
    assert_eq!(res.status(), 200);
    let redeemed = doc.conforms(res, "post", "/api/v1/tickets/redeem").await;
    assert_eq!(redeemed["scene_id"], scene_id.as_str());

    // Cancel (200) on a second scene, with a single-step code.
    let other = app.create_scene().await;
    let code = app.login_code(&unique("o"));
    let res = app
        .cancel(&json!({"scene_id": other.id, "code": code}))
        .await;
    assert_eq!(res.status(), 200);
    let cancelled = doc.conforms(res, "post", "/api/v1/mp/cancel").await;
    assert_eq!(cancelled["state"], "cancelled");

    // A login inside the mini-program (200), the same person as above.
    let res = app
        .post_json(
            "/api/v1/mp/login",
            &json!({"code": app.login_code(&unique("o"))}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let inside = doc.conforms(res, "post", "/api/v1/mp/login").await;
    assert!(
        inside["id_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );

    // Refusals: each a documented status with the problem schema.
    let unknown_scene = "0123456789abcdef0123456789abcdef";
    let scan_path = "/api/v1/mp/scan";
    let cases: Vec<(Response, &str, &str, u16, &[&str])> = vec![
        (
            app.scan(unknown_scene, &app.login_code("o_x")).await,
            "post",
            scan_path,
            404,
            &["scene_not_found"],
        ),
        (
            app.scan(&other.id, &app.login_code("o_y")).await,
            "post",
            scan_path,
            409,
            &["scene_final", "scene_taken"],
        ),
        (
            app.scan(&app.create_scene().await.id, "no-such-code").await,
            "post",
            scan_path,
            502,
            &["wechat_error"],
        ),
        (
            app.post_scene(&json!({"client_id": "nobody"}), None).await,
            "post",
            "/api/v1/scenes",
            400,
            &["unknown_client"],
        ),
        (
            app.post_scene(&json!({"client_id": CLIENT_ID}), Some("http://evil.test"))
                .await,
            "post",
            "/api/v1/scenes",
            403,
            &["origin_not_allowed"],
        ),
        (
            app.post_json(scan_path, &json!({"scene_id": 7})).await,
            "post",
            scan_path,
            400,
            &["invalid_request"],
        ),
        (
            app.redeem(ticket).await,
            "post",
            "/api/v1/tickets/redeem",
            400,
            &["invalid_ticket"],
        ),
        (
            app.redeem_as(CLIENT_ID, "wrong-secret", ticket).await,
            "post",
            "/api/v1/tickets/redeem",
            401,
            &["unauthorized"],
        ),
        (
            app.http
                .get(app.url(&format!("/api/v1/scenes/{scene_id}/events")))
                .send()
                .await
                .expect("GET events"),
            "get",
            events_path,
            401,
            &["invalid_token"],
        ),
        (
            app.http
                .post(app.url("/api/v1/mp/avatar"))
                .header(CONTENT_TYPE, "image/png")
                .body(vec![1u8, 2, 3])
                .send()
                .await
                .expect("POST avatar"),
            "post",
            "/api/v1/mp/avatar",
            401,
            &["invalid_token"],
        ),
        (
            app.http
                .get(app.url(&format!("/api/v1/avatars/{unknown_scene}")))
                .send()
                .await
                .expect("GET avatar"),
            "get",
            "/api/v1/avatars/{id}",
            404,
            &["invalid_request"],
        ),
        (
            app.qrcode(unknown_scene).await,
            "get",
            "/api/v1/scenes/{scene_id}/qrcode",
            404,
            &["scene_not_found"],
        ),
        (
            app.http
                .get(app.url(&format!("/api/v1/scenes/{scene_id}/ws")))
                .send()
                .await
                .expect("GET ws"),
            "get",
            "/api/v1/scenes/{scene_id}/ws",
            400,
            &["invalid_request"],
        ),
    ];
    for (res, method, path, status, codes) in cases {
        let code = doc.problem(res, method, path, status).await;
        assert!(codes.contains(&code.as_str()), "{method} {path}: {code}");
    }
}

#[tokio::test]
async fn rate_limited_answers_match_the_document() {
    let app = spawn_app_with(|c| {
        c.rate_limit.scenes_per_minute = 1;
        c.rate_limit.burst = 1;
    })
    .await;
    let doc = Doc::fetch(&app).await;
    let first = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
        .await;
    assert_eq!(first.status(), 201);
    let second = app
        .post_scene(&json!({"client_id": CLIENT_ID}), Some(ORIGIN))
        .await;
    assert_eq!(
        doc.problem(second, "post", "/api/v1/scenes", 429).await,
        "rate_limited"
    );
}

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
