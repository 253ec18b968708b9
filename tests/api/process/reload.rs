//! SIGHUP reloads the configuration file while browsers wait on their
//! sockets: a good file adds (and later removes) a client, a file with
//! mistakes is refused whole, and a changed `server.bind` (and
//! `public_url`) is named and kept.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Hub, Ws, next, post, recv_notify, ws_auth};

/// The hub's own file: `bind` given here (no variable overrides it), the
/// simulator, one app, the `demo` client, then `extra`.
fn config(bind: &str, extra: &str) -> String {
    config_at(bind, "http://127.0.0.1:8080", extra)
}

/// [`config`] with the hub's `public_url`.
fn config_at(bind: &str, public_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
bind = "{bind}"
public_url = "{public_url}"

[wechat]
mode = "simulator"

[[apps]]
app_id = "wxdemo0000000000"
secret = "demo-app-secret"
page = "pages/scanlogin/index"

[[clients]]
client_id = "demo"
name = "Demo site"
client_secret = "demo-client-secret"
allowed_origins = ["http://127.0.0.1:8080"]
{extra}
"#
    )
}

/// The mini-program and the client a good reload adds.
const SHOP: &str = r#"
[[apps]]
app_id = "wxshop0000000000"
secret = "shop-app-secret"
page = "pages/scanlogin/index"

[[clients]]
client_id = "shop"
name = "Shop"
client_secret = "shop-client-secret-0123456789"
allowed_origins = ["https://shop.example"]
app_id = "wxshop0000000000"
"#;

/// The app of the shop's scenes.
const SHOP_APP: &str = "wxshop0000000000";

/// Two mistakes the checks report together.
const TWO_MISTAKES: &str = r#"
[scene]
ttl_secs = 0

[rate_limit]
scenes_per_minute = 10
burst = 0
"#;

/// A hub on `dir/hub.toml` (written from `text`), telling `dir/notify.sock`.
fn start(dir: &Path, text: &str) -> (Hub, PathBuf, UnixDatagram) {
    let file = dir.join("hub.toml");
    std::fs::write(&file, text).expect("config file");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let extra = [("NOTIFY_SOCKET", sock_path.display().to_string())];
    let hub = Hub::start_with_config(dir, &file, &extra);
    recv_notify(&sock, "READY=1");
    (hub, file, sock)
}

/// Writes `text` to the hub's file, sends SIGHUP and waits for the hub's
/// `READY=1` after it; returns what the hub told systemd.
fn reload(hub: &Hub, file: &Path, sock: &UnixDatagram, text: &str) -> Vec<String> {
    std::fs::write(file, text).expect("config file");
    let status = Command::new("kill")
        .arg("-HUP")
        .arg(hub.child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    recv_notify(sock, "READY=1")
}

fn log(hub: &Hub) -> String {
    std::fs::read_to_string(&hub.log).expect("log")
}

/// `scanlogin_config_reloads_total{outcome}` as the hub reports it.
async fn reloads(hub: &Hub, outcome: &str) -> f64 {
    let text = reqwest::get(hub.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let label = format!("outcome=\"{outcome}\"");
    text.lines()
        .filter(|l| l.starts_with("scanlogin_config_reloads_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A new scene of `client`: the status and the answer.
async fn new_scene(hub: &Hub, client: &str) -> (u16, Value) {
    post(hub.url("/api/v1/scenes"), json!({"client_id": client})).await
}

/// A scene of `client` with its browser waiting on an authenticated socket.
async fn waiting(hub: &Hub, client: &str) -> (String, Ws) {
    let (status, body) = new_scene(hub, client).await;
    assert_eq!(status, 201, "{body}");
    let app = if client == "shop" {
        SHOP_APP
    } else {
        "wxdemo0000000000"
    };
    assert_eq!(body["app_id"], app, "{body}");
    let scene = body["scene_id"].as_str().expect("id").to_owned();
    let token = body["browser_token"].as_str().expect("token");
    let mut ws = ws_auth(hub, &scene, token).await;
    assert_eq!(next(&mut ws).await.expect("state")["state"], "waiting");
    (scene, ws)
}

/// The phone scans and confirms `scene`; its socket sees both steps and
/// the ticket, which the client redeems with `secret` for `user`.
async fn confirm_and_redeem(hub: &Hub, scene: &str, ws: &mut Ws, client: &str, secret: &str) {
    let user = format!("user-of-{scene}");
    // `wx.login` in the client's mini-program, on the simulated phone.
    let app = if client == "shop" {
        SHOP_APP
    } else {
        "wxdemo0000000000"
    };
    let (status, body) = post(
        hub.url("/sim/api/login"),
        json!({"user": user, "app_id": app}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let code = body["code"].as_str().expect("code");
    let (status, scan) = post(
        hub.url("/api/v1/mp/scan"),
        json!({"scene_id": scene, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{scan}");
    assert_eq!(next(ws).await.expect("scanned")["state"], "scanned");
    let mp_token = scan["mp_token"].as_str().expect("mp_token");
    let (status, body) = post(
        hub.url("/api/v1/mp/confirm"),
        json!({"scene_id": scene, "mp_token": mp_token}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let event = next(ws).await.expect("confirmed");
    assert_eq!(event["state"], "confirmed", "{event}");
    let ticket = event["ticket"].as_str().expect("ticket");
    let res = reqwest::Client::new()
        .post(hub.url("/api/v1/tickets/redeem"))
        .basic_auth(client, Some(secret))
        .json(&json!({"ticket": ticket}))
        .send()
        .await
        .expect("redeem");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["client_id"], client, "{body}");
}

#[tokio::test]
async fn a_good_file_adds_a_client_while_sockets_wait_and_a_later_one_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, file, sock) = start(dir.path(), &config("127.0.0.1:0", ""));
    hub.wait_ready().await;
    let (status, body) = new_scene(&hub, "shop").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_client")),
        "{body}"
    );
    let (first, mut first_ws) = waiting(&hub, "demo").await;
    let (second, mut second_ws) = waiting(&hub, "demo").await;

    let told = reload(&hub, &file, &sock, &config("127.0.0.1:0", SHOP));
    // systemd (Type=notify-reload) hears RELOADING=1 with the monotonic
    // time in one message, then READY=1.
    let reloading = told
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1: {told:?}"));
    assert!(
        told[reloading].lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))),
        "{told:?}"
    );
    assert!(
        told[reloading + 1..]
            .iter()
            .any(|m| m.lines().any(|l| l == "READY=1")),
        "{told:?}"
    );
    assert_eq!(reloads(&hub, "ok").await, 1.0);
    assert_eq!(reloads(&hub, "refused").await, 0.0);
    assert!(log(&hub).contains("configuration reloaded"));

    // The new client logs a person in, in the new mini-program, from start
    // to redemption.
    let (shop_scene, mut shop_ws) = waiting(&hub, "shop").await;
    confirm_and_redeem(
        &hub,
        &shop_scene,
        &mut shop_ws,
        "shop",
        "shop-client-secret-0123456789",
    )
    .await;
    // The sockets opened before the reload still get their pushes.
    confirm_and_redeem(&hub, &first, &mut first_ws, "demo", "demo-client-secret").await;
    confirm_and_redeem(&hub, &second, &mut second_ws, "demo", "demo-client-secret").await;

    reload(&hub, &file, &sock, &config("127.0.0.1:0", ""));
    assert_eq!(reloads(&hub, "ok").await, 2.0);
    let (status, body) = new_scene(&hub, "shop").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_client")),
        "a removed client makes no scene: {body}"
    );
    let res = reqwest::Client::new()
        .post(hub.url("/api/v1/tickets/redeem"))
        .basic_auth("shop", Some("shop-client-secret-0123456789"))
        .json(&json!({"ticket": "x.y"}))
        .send()
        .await
        .expect("redeem");
    assert_eq!(res.status(), 401, "a removed client cannot authenticate");
}

#[tokio::test]
async fn a_file_with_two_mistakes_is_refused_whole_and_both_are_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, file, sock) = start(dir.path(), &config("127.0.0.1:0", ""));
    hub.wait_ready().await;
    let (scene, mut ws) = waiting(&hub, "demo").await;

    // The shop would be added, but the file has two mistakes.
    let bad = config("127.0.0.1:0", &format!("{SHOP}\n{TWO_MISTAKES}"));
    reload(&hub, &file, &sock, &bad);
    let text = log(&hub);
    assert!(
        text.contains("configuration reload refused: scene.ttl_secs"),
        "{text}"
    );
    assert!(
        text.contains("configuration reload refused: rate_limit.burst"),
        "{text}"
    );
    assert!(!text.contains("configuration reloaded"), "{text}");
    assert_eq!(reloads(&hub, "refused").await, 1.0);
    assert_eq!(reloads(&hub, "ok").await, 0.0);

    // The old settings still serve: no shop, and the waiting browser logs in.
    let (status, body) = new_scene(&hub, "shop").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("unknown_client")),
        "{body}"
    );
    confirm_and_redeem(&hub, &scene, &mut ws, "demo", "demo-client-secret").await;
    // The scenes still live for the old 300 s, not 0.
    let (status, body) = new_scene(&hub, "demo").await;
    assert_eq!(status, 201, "{body}");
    let expires_in = body["expires_in"].as_i64().expect("expires_in");
    assert!(expires_in > 200, "{body}");
}

#[tokio::test]
async fn a_changed_bind_and_public_url_are_named_and_keep_their_old_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hub, file, sock) = start(dir.path(), &config("127.0.0.1:0", ""));
    hub.wait_ready().await;
    let (scene, mut ws) = waiting(&hub, "demo").await;

    let moved = config_at("127.0.0.1:1", "http://127.0.0.1:9090", SHOP);
    reload(&hub, &file, &sock, &moved);
    let text = log(&hub);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("only a restart applies it"))
        .collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(warnings[0].contains("server.bind changed"), "{text}");
    assert!(warnings[1].contains("server.public_url changed"), "{text}");
    assert!(text.contains("configuration reloaded"), "{text}");
    assert_eq!(reloads(&hub, "ok").await, 1.0);
    // Still on the old address, with the rest of the file applied; the
    // URLs handed out still name the old public_url.
    let (status, body) = new_scene(&hub, "shop").await;
    assert_eq!(status, 201, "{body}");
    let qrcode_url = body["qrcode_url"].as_str().expect("qrcode_url");
    assert!(
        qrcode_url.starts_with("http://127.0.0.1:8080/api/v1/scenes/"),
        "{body}"
    );
    confirm_and_redeem(&hub, &scene, &mut ws, "demo", "demo-client-secret").await;
}
