//! Discovery, the published keys, rotation, sealing, and one key for
//! nodes that start together.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{PUBLIC_URL, WAIT, hub_settings, ok_json};

use super::{exchange, jwks, login, oidc_app, params, pkce, verify};

#[tokio::test]
async fn discovery_lists_the_endpoints_and_capabilities() {
    let app = oidc_app().await;
    let d = ok_json(
        app.http
            .get(app.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("GET discovery"),
    )
    .await;
    assert_eq!(d["issuer"], PUBLIC_URL);
    for (field, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/oauth2/jwks"),
    ] {
        assert_eq!(d[field], format!("{PUBLIC_URL}{path}"), "{field}");
    }
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(d["grant_types_supported"], json!(["authorization_code"]));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert_eq!(d["scopes_supported"], json!(["openid", "profile", "phone"]));
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
}

#[tokio::test]
async fn jwks_publishes_public_rsa_keys_only() {
    let app = oidc_app().await;
    let raw = ok_json(
        app.http
            .get(app.url("/oauth2/jwks"))
            .send()
            .await
            .expect("jwks"),
    )
    .await;
    let keys = raw["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{raw}");
    let k = &keys[0];
    assert_eq!(k["kty"], "RSA");
    assert_eq!(k["alg"], "RS256");
    assert_eq!(k["use"], "sig");
    assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    let n = URL_SAFE_NO_PAD
        .decode(k["n"].as_str().expect("n"))
        .expect("n");
    assert!(n.len() >= 256, "modulus of {} bytes", n.len());
    assert_eq!(k["e"], "AQAB");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(k.get(private).is_none(), "{private} published: {k}");
    }
}

#[tokio::test]
async fn rotation_keeps_old_tokens_verifiable() {
    let app = oidc_app().await;
    let p = pkce();
    let (q, _) = login(&app, &params(&p, "s", "n")).await;
    let old = ok_json(exchange(&app, &q["code"], &p).await).await;
    let old_token = old["id_token"].as_str().expect("id_token").to_owned();
    let old_kid = jsonwebtoken::decode_header(&old_token).expect("header").kid;

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, &app.config_toml).expect("write config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scanlogin"))
        .arg("--config")
        .arg(&config)
        .arg("rotate-keys")
        .env_clear()
        .envs(crate::process::kept_env())
        .output();
    let out = tokio::time::timeout(WAIT * 3, out)
        .await
        .expect("rotate-keys finishes")
        .expect("rotate-keys runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let set = jwks(&app).await;
    assert_eq!(set.keys.len(), 2, "old and new key are published");
    let p2 = pkce();
    let (q2, _) = login(&app, &params(&p2, "s", "n")).await;
    let new = ok_json(exchange(&app, &q2["code"], &p2).await).await;
    let new_token = new["id_token"].as_str().expect("id_token");
    let new_kid = jsonwebtoken::decode_header(new_token).expect("header").kid;
    assert_ne!(old_kid, new_kid, "the new key signs");
    verify(&app, &old_token).await;
    verify(&app, new_token).await;
}

#[tokio::test]
async fn the_signing_key_is_sealed_at_rest() {
    let app = oidc_app().await;
    let db = sea_orm::Database::connect(&app.db_url).await.expect("db");
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT kid, private_key FROM oidc_keys",
        ))
        .await
        .expect("read keys");
    let _ = db.close().await;
    assert_eq!(rows.len(), 1, "one key made on first start");
    let sealed: String = rows[0].try_get_by_index(1).expect("private_key");
    assert!(sealed.starts_with("v1."), "sealed format");
    assert!(!sealed.contains("PRIVATE KEY"), "no PEM in the database");
}

/// Two nodes starting at once on one fresh PostgreSQL database end up with
/// one signing key, which both publish and use.
#[tokio::test]
async fn nodes_starting_together_share_one_key() {
    // Dropped (connections and all) when the guard goes, also on a panic.
    let Some(pg) = crate::cluster::ClusterDb::create().await else {
        return;
    };
    let db_url = pg.url.clone();
    let settings = || {
        hub_settings(&db_url, None, |c| {
            c.apps = vec![("wxoidc".into(), "oidc-app-secret".into())];
            c.settings(|s| {
                s.server.secret_key = Some(secrecy::SecretString::from(
                    "oidc-cluster-test-key-0123456789abcdef",
                ));
                s.database.max_connections = 4;
                s.log.level = "warn".into();
                s.clients = vec![scanlogin::config::ClientSettings {
                    redirect_uris: vec!["https://shop.test/cb".into()],
                    ..crate::helpers::client("shop", "Shop", "shop-client-secret-123")
                }];
            });
        })
    };
    let (a, b) = tokio::join!(
        scanlogin::Application::build(settings()),
        scanlogin::Application::build(settings())
    );
    let (a, b) = (a.expect("node A"), b.expect("node B"));
    let ports = [a.port(), b.port()];
    let stops = [a.shutdown_token(), b.shutdown_token()];
    let tasks = [
        tokio::spawn(a.run_until_stopped()),
        tokio::spawn(b.run_until_stopped()),
    ];
    let http = reqwest::Client::new();
    let mut kids = Vec::new();
    for port in ports {
        let set: Value = http
            .get(format!("http://127.0.0.1:{port}/oauth2/jwks"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("JSON");
        let keys = set["keys"].as_array().expect("keys").clone();
        assert_eq!(keys.len(), 1, "{set}");
        kids.push(keys[0]["kid"].clone());
    }
    assert_eq!(kids[0], kids[1], "both nodes publish the same key");
    for stop in stops {
        stop.cancel();
    }
    for task in tasks {
        let _ = tokio::time::timeout(WAIT, task).await;
    }
    drop(pg);
}
