//! Configuration guards (SPEC v3): the simulator behind a public reverse
//! proxy (loopback bind, public `public_url`) is refused unless told; a
//! `client_id` equal to an `app_id` is refused. Both as the binary runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `scanlogin <command>` on the repo's config.toml (simulator mode,
/// loopback bind) with these overrides; (exit code, stdout + stderr).
fn run(command: &str, dir: &Path, extra: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanlogin"));
    // Only the kept variables: a caller's SCANLOGIN__* must not reach it.
    cmd.env_clear().envs(crate::process::kept_env());
    cmd.arg(command)
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .env(
            "SCANLOGIN__DATABASE__URL",
            format!("sqlite://{}", dir.join("hub.db").display()),
        )
        .env("SCANLOGIN__SERVER__SECRET_KEY_FILE", dir.join("secret.key"))
        .env("SCANLOGIN__SERVER__BIND", "127.0.0.1:0")
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
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_simulator_behind_a_public_proxy_is_refused_unless_told() {
    let dir = tempfile::tempdir().expect("dir");
    let proxied = [("SCANLOGIN__SERVER__PUBLIC_URL", "https://login.example.com")];
    for command in ["check-config", "serve"] {
        let (code, output) = run(command, dir.path(), &proxied);
        assert_ne!(code, 0, "{command} must refuse: {output}");
        let lines: Vec<&str> = output
            .lines()
            .filter(|l| l.contains("wechat.simulator_on_network"))
            .collect();
        assert_eq!(lines.len(), 1, "{command}: {output}");
        assert!(lines[0].contains("server.public_url"), "{output}");
    }
    assert!(
        !dir.path().join("hub.db").exists(),
        "a refused start touches nothing"
    );
    let told = [
        ("SCANLOGIN__SERVER__PUBLIC_URL", "https://login.example.com"),
        ("SCANLOGIN__WECHAT__SIMULATOR_ON_NETWORK", "true"),
    ];
    let (code, output) = run("check-config", dir.path(), &told);
    assert_eq!(code, 0, "{output}");
}

#[test]
fn check_config_refuses_a_client_named_like_an_app() {
    let dir = tempfile::tempdir().expect("dir");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .expect("config.toml");
    let app_id = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("app_id = \""))
        .and_then(|rest| rest.split('"').next())
        .expect("config.toml names an app")
        .to_owned();
    let (code, output) = run(
        "check-config",
        dir.path(),
        &[("SCANLOGIN__CLIENTS__0__CLIENT_ID", app_id.as_str())],
    );
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("clients[0].client_id") && output.contains("also an app_id"),
        "{output}"
    );
}
