//! `GET /openapi.json`: a valid OpenAPI 3.1 document (parsed by the stock
//! `oas3` crate, every `$ref` resolving, every component schema valid JSON
//! Schema 2020-12) covering every route of the hub, with the fields docs/api.md
//! fixes marked required; and real answers of a running hub, through a whole
//! login and a row of refusals, validated against the schemas it documents
//! (with the `jsonschema` crate, objects closed to undocumented fields).

mod answers;
mod document;
mod expected;
mod openid;
mod served;

use reqwest::Response;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Map, Value, json};

use crate::helpers::TestApp;

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
