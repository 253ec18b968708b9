//! The built-in simulator as the binary runs it: refused on a network
//! bind unless told, and the demo's OpenID Connect login.

use serde_json::{Value, json};

use super::{Hub, post, run_once, sim_code};

#[test]
fn the_simulator_refuses_a_network_bind_unless_told() {
    let dir = tempfile::tempdir().expect("dir");
    let network = [("SCANLOGIN__SERVER__BIND", "0.0.0.0:0")];
    for command in ["check-config", "serve"] {
        let (code, _, stderr) = run_once(&[command], dir.path(), &network);
        assert_ne!(code, 0, "{command} must refuse: {stderr}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("wechat.simulator_on_network"))
            .collect();
        assert_eq!(lines.len(), 1, "{command}: {stderr}");
    }
    assert!(
        !dir.path().join("hub.db").exists(),
        "a refused start touches nothing"
    );
    // Told so, it starts; check-config still warns about the simulator.
    let told = [
        ("SCANLOGIN__SERVER__BIND", "0.0.0.0:0"),
        ("SCANLOGIN__WECHAT__SIMULATOR_ON_NETWORK", "true"),
    ];
    let (code, stdout, stderr) = run_once(&["check-config"], dir.path(), &told);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("warning: wechat.mode: simulator"),
        "{stdout}"
    );
    // A limit of 0 is reported.
    let off = [("SCANLOGIN__RATE_LIMIT__MP_PER_MINUTE", "0")];
    let (code, stdout, _) = run_once(&["check-config"], dir.path(), &off);
    assert_eq!(code, 0);
    assert!(stdout.contains("rate_limit.mp_per_minute"), "{stdout}");
}

#[tokio::test]
async fn the_demo_logs_in_with_openid_connect_in_simulator_mode() {
    let dir = tempfile::tempdir().expect("dir");
    // The demo's relying party and the authorize page use `public_url`.
    let hub = Hub::start_public(dir.path());
    hub.wait_ready().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    // The demo's relying party sends the browser to the authorize page.
    let res = http.get(hub.url("/demo/oidc")).send().await.expect("start");
    assert_eq!(res.status(), 302);
    let to = res.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let authorize = url::Url::parse(&to).expect("authorize URL");
    assert_eq!(authorize.path(), "/oauth2/authorize");
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "demo");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["redirect_uri"].ends_with("/demo/oidc/callback"));
    let (data, _, _) = crate::oidc::page_data(http.get(&to).send().await.expect("page")).await;
    // The page's widget makes the scene; the simulated phone confirms.
    let (status, scene) = {
        let res = http
            .post(hub.url("/api/v1/scenes"))
            .header("Origin", hub.url(""))
            .json(&json!({"client_id": "demo", "authorize_handle": data["handle"]}))
            .send()
            .await
            .expect("scene");
        (res.status(), res.json::<Value>().await.expect("JSON"))
    };
    assert_eq!(status, 201, "{scene}");
    let scene_id = scene["scene_id"].as_str().expect("id");
    let code = sim_code(&hub, "oidc-alice").await;
    let (status, body) = post(
        hub.url("/api/v1/mp/confirm"),
        json!({"scene_id": scene_id, "code": code, "profile": {"nickname": "Alice"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user_id = body["user_id"].as_str().expect("user_id").to_owned();
    let event: Value = http
        .get(hub.url(&format!("/api/v1/scenes/{scene_id}/events")))
        .bearer_auth(scene["browser_token"].as_str().expect("token"))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("event");
    let (status, done) = {
        let res = http
            .post(hub.url("/oauth2/authorize/complete"))
            .header("Origin", hub.url(""))
            .json(&json!({"handle": data["handle"], "ticket": event["ticket"]}))
            .send()
            .await
            .expect("complete");
        (res.status(), res.json::<Value>().await.expect("JSON"))
    };
    assert_eq!(status, 200, "{done}");
    // Back at the relying party: it exchanges, verifies and shows the claims.
    let back = done["redirect_to"].as_str().expect("redirect_to");
    let res = http.get(back).send().await.expect("callback");
    assert_eq!(res.status(), 200);
    let page = res.text().await.expect("page");
    assert!(page.contains("Logged in with OpenID Connect"), "{page}");
    assert!(
        page.contains(&user_id),
        "the sub is the redeem API's user id: {page}"
    );
    assert!(page.contains("Alice"));
    // The same redirect again is refused: the state was used.
    let again = http
        .get(back)
        .send()
        .await
        .expect("callback")
        .text()
        .await
        .expect("page");
    assert!(again.contains("did not complete"), "{again}");
}
