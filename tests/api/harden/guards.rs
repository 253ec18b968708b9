//! Configuration guards (SPEC v3): the simulator behind a public reverse
//! proxy (loopback bind, public `public_url`) is refused unless told; a
//! `client_id` equal to an `app_id` is refused. Both as the binary runs.

use std::path::Path;

/// Runs `scanlogin <command>` on the repo's config.toml (simulator mode,
/// loopback bind) with these overrides; (exit code, stdout + stderr).
fn run(command: &str, dir: &Path, extra: &[(&str, &str)]) -> (i32, String) {
    let vars: Vec<(&str, &str)> = std::iter::once(("SCANLOGIN__SERVER__BIND", "127.0.0.1:0"))
        .chain(extra.iter().copied())
        .collect();
    let (code, stdout, stderr) = crate::process::run_once(&[command], dir, &vars);
    (code, format!("{stdout}{stderr}"))
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
