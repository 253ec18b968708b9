//! The web suites: `node --test web/tests/` drives the widget, the demo page
//! and the simulated phone in headless Chromium, and the reference
//! mini-program page's logic, each against this build's `scanlogin` binary.
//! Skipped (with a note) where Chromium, Node or `web/node_modules` is
//! missing, unless `SCANLOGIN_REQUIRE_BROWSER` is set, as in CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole suite takes about a minute; this bounds a hung run.
const SUITE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why the suite cannot run on this machine, if it cannot.
fn missing(root: &Path) -> Option<String> {
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Some(format!("no Chromium at {}", chromium.display()));
    }
    if !root.join("web/node_modules/playwright-core").is_dir() {
        return Some("web/node_modules/playwright-core is missing (run `npm ci` in web/)".into());
    }
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("node is not on PATH".into());
    }
    None
}

#[test]
fn web_suites_pass_in_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(reason) = missing(root) {
        assert!(
            std::env::var_os("SCANLOGIN_REQUIRE_BROWSER").is_none(),
            "the browser suite is required (SCANLOGIN_REQUIRE_BROWSER) but cannot run: {reason}"
        );
        println!("browser suite skipped: {reason}");
        return;
    }
    let out = tempfile::NamedTempFile::new().expect("temp file for the suite's output");
    let mut child = Command::new("node")
        .args(["--test", "web/tests/"])
        .current_dir(root)
        .env("SCANLOGIN_BIN", env!("CARGO_BIN_EXE_scanlogin"))
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen output file"))
        .stderr(out.reopen().expect("reopen output file"))
        .spawn()
        .expect("start node --test web/tests/");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > SUITE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = std::fs::read_to_string(out.path()).unwrap_or_default();
    let summary: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("# ") && !l.starts_with("# Subtest"))
        .collect();
    println!("node --test web/tests/:\n{}", summary.join("\n"));
    match status {
        Some(s) if s.success() => {}
        Some(s) => panic!("node --test web/tests/ failed ({s}):\n{report}"),
        None => panic!("node --test web/tests/ did not finish within {SUITE_TIMEOUT:?}:\n{report}"),
    }
}
