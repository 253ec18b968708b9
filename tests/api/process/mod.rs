//! The `scanlogin` binary as systemd runs it: notify protocol, SIGTERM, SIGHUP,
//! restart on the same database mid-login, metrics, and logs free of secrets.

mod account;
mod crash;
mod observability;
mod reload;
mod simulator;
mod systemd;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A hub process on a loopback port of its own choosing, with its own data
/// folder.
struct Hub {
    child: Child,
    port: u16,
    dir: PathBuf,
    /// Where its stdout and stderr (the log) go.
    log: PathBuf,
}

/// The caller's variables a hub process keeps; everything else (any
/// `SCANLOGIN__*` setting, `RUST_LOG`) is left out.
const KEPT_ENV: [&str; 5] = ["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"];

/// The caller's variables a child process keeps ([`KEPT_ENV`]): for
/// `.env_clear().envs(kept_env())`.
pub(crate) fn kept_env() -> Vec<(&'static str, std::ffi::OsString)> {
    KEPT_ENV
        .into_iter()
        .filter_map(|k| Some((k, std::env::var_os(k)?)))
        .collect()
}

/// Runs a one-shot `scanlogin ARGS` (a command that exits by itself) on the
/// repo's config.toml with its database and secret key in `dir`, these
/// variables laid over ([`kept_env`] only from the caller), for at most
/// 20 s: (exit code, stdout, stderr).
pub(crate) fn run_once(args: &[&str], dir: &Path, vars: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanlogin"));
    cmd.env_clear().envs(kept_env());
    cmd.args(args)
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .env(
            "SCANLOGIN__DATABASE__URL",
            format!("sqlite://{}", dir.join("hub.db").display()),
        )
        .env("SCANLOGIN__SERVER__SECRET_KEY_FILE", dir.join("secret.key"))
        .envs(vars.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("start scanlogin");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("scanlogin {args:?} still running after 20 s");
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

/// A command that runs `binary` with `listener` handed over as systemd
/// socket activation does (sd_listen_fds(3)): the socket at fd 3,
/// `LISTEN_FDS=1`, and `LISTEN_PID` the child's own pid. `Command` passes
/// only fds 0-2 and `pre_exec` needs `unsafe` (forbidden here), so the
/// listener goes in as stdin and a `sh` moves it to fd 3, sets `LISTEN_PID`
/// to its pid (`$$`) and `exec`s the binary, which keeps that pid. The
/// caller adds the arguments and environment; once spawned, dropping the
/// command closes this process's copy of the listener.
pub(crate) fn activated(binary: &Path, listener: std::net::TcpListener) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"exec 3<&0 </dev/null; LISTEN_FDS=1 LISTEN_PID=$$ exec "$0" "$@""#)
        .arg(binary)
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            listener,
        )));
    cmd
}

/// The port in the hub's "scanlogin listening" log line (human or JSON).
pub(crate) fn listening_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("scanlogin listening"))?;
    // The `addr` field (not `public_url`, which may name a port too).
    let line = &line[line.find("addr")?..];
    let at = line.find("127.0.0.1:")? + "127.0.0.1:".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl Hub {
    /// Starts the hub on `127.0.0.1:0`; its stdout (the log) goes to `log`
    /// (default: a new file in `dir`), where the hub says which port it
    /// holds. Returns once that line is there.
    fn start(dir: &Path, extra: &[(&str, String)], log: Option<&Path>) -> Hub {
        Self::spawn(dir, extra, log, None).unwrap_or_else(|text| panic!("{text}"))
    }

    /// Starts the hub on the configuration file `config`, which names its
    /// own `server.bind` (no variable overrides it, so a reload may change
    /// it); the database and the key are in `dir` as with [`Hub::start`].
    fn start_with_config(dir: &Path, config: &Path, extra: &[(&str, String)]) -> Hub {
        Self::spawn_on(dir, Some(config), extra, None, None).unwrap_or_else(|text| panic!("{text}"))
    }

    /// Starts the hub where its URLs must name its own port (`public_url`,
    /// its own origin allowed): the binary takes `public_url` before it
    /// starts, so the test binds `127.0.0.1:0` first, keeps the listener and
    /// hands it to the hub by socket activation ([`activated`]); no other
    /// process can take that port in between. `server.bind` names the same
    /// address, so a hub that bound it instead of taking the socket would
    /// fail with "address in use".
    fn start_public(dir: &Path) -> Hub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
        let addr = listener.local_addr().expect("its address");
        let base = format!("http://{addr}");
        let extra = [
            ("SCANLOGIN__SERVER__BIND", addr.to_string()),
            ("SCANLOGIN__SERVER__PUBLIC_URL", base.clone()),
            (
                "SCANLOGIN__CLIENTS__0__ALLOWED_ORIGINS",
                format!("[\"{base}\"]"),
            ),
        ];
        Self::spawn(dir, &extra, None, Some(listener)).unwrap_or_else(|text| panic!("{text}"))
    }

    /// The hub on `listener` (handed over by socket activation), or on
    /// `127.0.0.1:0` bound by itself when `None`; the log's text when it did
    /// not listen where it should.
    fn spawn(
        dir: &Path,
        extra: &[(&str, String)],
        log: Option<&Path>,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Hub, String> {
        Self::spawn_on(dir, None, extra, log, listener)
    }

    /// [`Hub::spawn`] on `config` (default: the repository's `config.toml`,
    /// with `server.bind` set by a variable).
    fn spawn_on(
        dir: &Path,
        config: Option<&Path>,
        extra: &[(&str, String)],
        log: Option<&Path>,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Hub, String> {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let log = log.map(Path::to_owned).unwrap_or_else(|| {
            let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            dir.join(format!("hub-{n}.out"))
        });
        let out = std::fs::File::create(&log).expect("log file");
        let binary = Path::new(env!("CARGO_BIN_EXE_scanlogin"));
        let port = listener
            .as_ref()
            .map(|l| l.local_addr().expect("listener address").port());
        let mut cmd = match listener {
            Some(listener) => activated(binary, listener),
            None => Command::new(binary),
        };
        cmd.env_clear().envs(kept_env());
        let default_config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        cmd.arg("serve")
            .arg("--config")
            .arg(config.unwrap_or(&default_config));
        if config.is_none() {
            cmd.env("SCANLOGIN__SERVER__BIND", "127.0.0.1:0");
        }
        cmd.env(
            "SCANLOGIN__DATABASE__URL",
            format!("sqlite://{}", dir.join("hub.db").display()),
        )
        .env("SCANLOGIN__SERVER__SECRET_KEY_FILE", dir.join("secret.key"))
        .stdout(out.try_clone().expect("log file"))
        .stderr(out);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start scanlogin");
        // The hub holds the listener now; this process's copy goes with `cmd`.
        drop(cmd);
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            match listening_port(&text) {
                Some(p) if port.is_none_or(|want| want == p) => break p,
                Some(p) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("listening on {p}, not {port:?}:\n{text}"));
                }
                None => {}
            }
            if let Some(status) = child.try_wait().expect("wait") {
                return Err(format!(
                    "the hub exited ({status}) before it listened:\n{text}"
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the hub did not say where it listens within 20 s:\n{text}"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Hub {
            child,
            port,
            dir: dir.to_owned(),
            log,
        })
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
