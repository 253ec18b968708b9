//! The `scanlogin` binary as systemd runs it: notify protocol, SIGTERM,
//! restart on the same database mid-login, metrics, and logs free of secrets.

use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A hub process on a free loopback port with its own data folder.
struct Hub {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Hub {
    fn start(dir: &Path, port: u16, extra: &[(&str, String)], log: Stdio) -> Hub {
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanlogin"));
        cmd.arg("serve")
            .arg("--config")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
            .env("SCANLOGIN__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("SCANLOGIN__SERVER__PUBLIC_URL", &base)
            .env(
                "SCANLOGIN__DATABASE__URL",
                format!("sqlite://{}", dir.join("hub.db").display()),
            )
            .env("SCANLOGIN__SERVER__SECRET_KEY_FILE", dir.join("secret.key"))
            .env(
                "SCANLOGIN__CLIENTS__0__ALLOWED_ORIGINS",
                format!("[\"{base}\"]"),
            )
            .env_remove("RUST_LOG")
            .stdout(log)
            .stderr(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start scanlogin");
        Hub {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = http.get(self.url("/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("hub on port {} not ready within 20 s", self.port);
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("hub did not exit within 20 s of SIGTERM");
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs JSON; the status and the JSON answer (null when there is none).
pub(crate) async fn post(url: String, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn sim_code(hub: &Hub, user: &str) -> String {
    let (status, body) = post(hub.url("/sim/api/login"), json!({"user": user})).await;
    assert_eq!(status, 200, "{body}");
    body["code"].as_str().expect("code").to_owned()
}

async fn ws_auth(hub: &Hub, scene: &str, token: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{}/api/v1/scenes/{scene}/ws", hub.port);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("ws connect in time")
    .expect("ws connect");
    ws.send(Message::text(
        json!({"type": "auth", "browser_token": token}).to_string(),
    ))
    .await
    .expect("auth");
    ws
}

/// The next text frame as JSON, or the close code.
async fn next(ws: &mut Ws) -> Result<Value, u16> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("frame within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(&t).expect("json frame")),
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(1006),
        }
    }
}

async fn create_scene(hub: &Hub) -> (String, String) {
    let (status, body) = post(hub.url("/api/v1/scenes"), json!({"client_id": "demo"})).await;
    assert_eq!(status, 201, "{body}");
    (
        body["scene_id"].as_str().expect("id").to_owned(),
        body["browser_token"].as_str().expect("token").to_owned(),
    )
}

fn recv_notify(sock: &UnixDatagram, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = text.lines().any(|l| l == want);
            seen.push(text);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} from the hub within 20 s; saw {seen:?}");
}

#[tokio::test]
async fn systemd_sees_ready_then_stopping_and_exit_is_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let extra = [
        ("NOTIFY_SOCKET", sock_path.display().to_string()),
        ("WATCHDOG_USEC", "400000".to_owned()),
        ("WATCHDOG_PID", String::new()),
    ];
    let mut hub = Hub::start(dir.path(), free_port(), &extra, Stdio::null());
    let before = recv_notify(&sock, "READY=1");
    // READY comes only once the listener answers and migrations ran.
    hub.wait_ready().await;
    let watchdog = recv_notify(&sock, "WATCHDOG=1");
    assert!(
        watchdog.iter().any(|m| m.contains("WATCHDOG=1")),
        "{watchdog:?}"
    );
    hub.sigterm();
    let after = recv_notify(&sock, "STOPPING=1");
    assert_eq!(hub.wait_exit(), 0, "exit code after SIGTERM");
    assert!(
        !before.iter().any(|m| m.contains("STOPPING")),
        "STOPPING before the signal: {before:?}"
    );
    assert!(after.iter().any(|m| m.contains("STOPPING=1")));
}

#[tokio::test]
async fn restart_mid_login_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut hub = Hub::start(dir.path(), port, &[], Stdio::null());
    hub.wait_ready().await;
    let (scene, token) = create_scene(&hub).await;
    let mut ws = ws_auth(&hub, &scene, &token).await;
    assert_eq!(next(&mut ws).await.expect("state")["state"], "waiting");
    let code = sim_code(&hub, "carol").await;
    let (status, scan) = post(
        hub.url("/api/v1/mp/scan"),
        json!({"scene_id": scene, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{scan}");
    assert_eq!(next(&mut ws).await.expect("state")["state"], "scanned");

    hub.sigterm();
    assert_eq!(
        next(&mut ws).await,
        Err(1012),
        "sockets close with 1012 on shutdown"
    );
    assert_eq!(hub.wait_exit(), 0);

    let hub = Hub::start(&hub.dir.clone(), port, &[], Stdio::null());
    hub.wait_ready().await;
    let mut ws = ws_auth(&hub, &scene, &token).await;
    assert_eq!(
        next(&mut ws).await.expect("state")["state"],
        "scanned",
        "state survived the restart"
    );
    let mp_token = scan["mp_token"].as_str().expect("mp_token");
    let (status, body) = post(
        hub.url("/api/v1/mp/confirm"),
        json!({"scene_id": scene, "mp_token": mp_token, "profile": {"nickname": "Carol"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let event = next(&mut ws).await.expect("confirmed");
    assert_eq!(event["state"], "confirmed");
    assert_eq!(event["user"]["nickname"], "Carol");
    assert!(
        event["ticket"]
            .as_str()
            .is_some_and(|t| t.starts_with(&scene))
    );
    assert_eq!(next(&mut ws).await, Err(1000));
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|lb| l.contains(lb)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// One complete login through the simulator; returns every secret it saw.
async fn full_login(hub: &Hub, user: &str) -> Vec<String> {
    let (scene, token) = create_scene(hub).await;
    let img = reqwest::get(hub.url(&format!("/api/v1/scenes/{scene}/qrcode")))
        .await
        .expect("qrcode");
    assert_eq!(img.headers()["content-type"], "image/png");
    let mut ws = ws_auth(hub, &scene, &token).await;
    assert_eq!(next(&mut ws).await.expect("state")["state"], "waiting");
    let code = sim_code(hub, user).await;
    let (_, scan) = post(
        hub.url("/api/v1/mp/scan"),
        json!({"scene_id": scene, "code": code}),
    )
    .await;
    let mp_token = scan["mp_token"].as_str().expect("mp_token").to_owned();
    assert_eq!(next(&mut ws).await.expect("scanned")["state"], "scanned");
    let (status, _) = post(
        hub.url("/api/v1/mp/confirm"),
        json!({"scene_id": scene, "mp_token": mp_token}),
    )
    .await;
    assert_eq!(status, 200);
    let event = next(&mut ws).await.expect("confirmed");
    let ticket = event["ticket"].as_str().expect("ticket").to_owned();
    let res = reqwest::Client::new()
        .post(hub.url("/api/v1/tickets/redeem"))
        .basic_auth("demo", Some("demo-client-secret"))
        .json(&json!({"ticket": ticket}))
        .send()
        .await
        .expect("redeem");
    assert_eq!(res.status(), 200);
    vec![token, mp_token, ticket, code]
}

#[tokio::test]
async fn metrics_move_after_a_login() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(dir.path(), free_port(), &[], Stdio::null());
    hub.wait_ready().await;
    let scrape = || async {
        reqwest::get(hub.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let before = scrape().await;
    full_login(&hub, "dave").await;
    let after = scrape().await;
    let moved =
        |name: &str, labels: &[&str]| metric(&after, name, labels) - metric(&before, name, labels);
    assert_eq!(moved("scanlogin_scenes_created_total", &[]), 1.0, "{after}");
    assert_eq!(
        moved("scanlogin_scenes_ended_total", &["outcome=\"confirmed\""]),
        1.0
    );
    assert_eq!(moved("scanlogin_confirm_to_push_seconds_count", &[]), 1.0);
    assert!(
        moved(
            "scanlogin_wechat_calls_total",
            &["api=\"jscode2session\"", "outcome=\"ok\""]
        ) >= 1.0
    );
    assert!(
        moved(
            "scanlogin_wechat_calls_total",
            &["api=\"getwxacodeunlimit\"", "outcome=\"ok\""]
        ) >= 1.0
    );
    assert!(
        moved(
            "scanlogin_http_requests_total",
            &["route=\"/api/v1/mp/confirm\"", "status=\"200\""]
        ) >= 1.0,
        "{after}"
    );
    assert!(after.contains("scanlogin_open_sockets"), "{after}");
    assert!(!after.contains(&dir.path().display().to_string()));
}

#[tokio::test]
async fn debug_logs_carry_no_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("out.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let extra = [
        ("SCANLOGIN__LOG__LEVEL", "debug".to_owned()),
        ("SCANLOGIN__LOG__FORMAT", "json".to_owned()),
    ];
    let mut hub = Hub::start(dir.path(), free_port(), &extra, Stdio::from(log));
    hub.wait_ready().await;
    let mut secrets = full_login(&hub, "erin").await;
    // A failed redemption and a bad token must not echo what was sent either.
    let res = reqwest::Client::new()
        .post(hub.url("/api/v1/tickets/redeem"))
        .basic_auth("demo", Some("wrong-secret-value-123"))
        .json(&json!({"ticket": "forged-ticket-value-456"}))
        .send()
        .await
        .expect("redeem");
    assert_eq!(res.status(), 401);
    secrets.extend([
        "wrong-secret-value-123".to_owned(),
        "forged-ticket-value-456".to_owned(),
    ]);
    secrets.extend([
        "demo-app-secret".to_owned(),
        "demo-client-secret".to_owned(),
    ]);
    let db = sea_orm::Database::connect(format!(
        "sqlite://{}?mode=ro",
        dir.path().join("hub.db").display()
    ))
    .await
    .expect("open db");
    use sea_orm::ConnectionTrait;
    for sql in [
        "SELECT session_key AS v FROM code_exchanges",
        "SELECT access_token AS v FROM wechat_tokens",
    ] {
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .expect("query");
        for row in rows {
            secrets.push(row.try_get::<String>("", "v").expect("value"));
        }
    }
    hub.sigterm();
    assert_eq!(hub.wait_exit(), 0);
    let out = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        out.lines().count() > 10,
        "debug logging produced output:\n{out}"
    );
    assert!(
        out.contains("\"route\":\"/api/v1/mp/confirm\""),
        "request spans name the route template"
    );
    for secret in &secrets {
        assert!(
            secret.len() >= 12,
            "secret too short to search for: {secret}"
        );
        assert!(
            !out.contains(secret.as_str()),
            "log leaks a secret starting {:?}",
            &secret[..6]
        );
    }
}

/// Runs a one-shot `scanlogin` command on the repo's config with these
/// overrides; (exit code, stdout, stderr).
fn run_command(command: &str, dir: &Path, extra: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanlogin"));
    cmd.arg(command)
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .env(
            "SCANLOGIN__DATABASE__URL",
            format!("sqlite://{}", dir.join("hub.db").display()),
        )
        .env("SCANLOGIN__SERVER__SECRET_KEY_FILE", dir.join("secret.key"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start scanlogin");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("scanlogin {command} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_simulator_refuses_a_network_bind_unless_told() {
    let dir = tempfile::tempdir().expect("dir");
    let network = [("SCANLOGIN__SERVER__BIND", "0.0.0.0:0")];
    for command in ["check-config", "serve"] {
        let (code, _, stderr) = run_command(command, dir.path(), &network);
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
    let (code, stdout, stderr) = run_command("check-config", dir.path(), &told);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("warning: wechat.mode: simulator"),
        "{stdout}"
    );
    // A limit of 0 is reported.
    let off = [("SCANLOGIN__RATE_LIMIT__MP_PER_MINUTE", "0")];
    let (code, stdout, _) = run_command("check-config", dir.path(), &off);
    assert_eq!(code, 0);
    assert!(stdout.contains("rate_limit.mp_per_minute"), "{stdout}");
}

#[tokio::test]
async fn malformed_requests_write_no_error_lines() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let log_path = dir.path().join("hub.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut hub = Hub::start(dir.path(), free_port(), &[], Stdio::from(log));
    hub.wait_ready().await;
    let garbage: [&[u8]; 4] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"POST /api/v1/scenes HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: \x01\x02\r\n\r\n",
    ];
    for request in garbage {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", hub.port))
            .await
            .expect("connect");
        conn.write_all(request).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
        assert!(answer.starts_with(b"HTTP/1.1 400"), "{request:?}");
    }
    // Bad JSON and wrong credentials are the clients' mistakes too.
    let (status, _) = post(hub.url("/api/v1/scenes"), json!([1])).await;
    assert_eq!(status, 400);
    hub.sigterm();
    assert_eq!(hub.wait_exit(), 0);
    let text = std::fs::read_to_string(&log_path).expect("log");
    assert!(text.contains("scanlogin listening"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
}

#[tokio::test]
async fn the_demo_logs_in_with_openid_connect_in_simulator_mode() {
    let dir = tempfile::tempdir().expect("dir");
    let hub = Hub::start(dir.path(), free_port(), &[], Stdio::null());
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
            .json(&json!({"client_id": "demo"}))
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
