//! The web suites: `node --test web/tests/` drives the widget, the demo page
//! and the simulated phone in headless Chromium, and the reference
//! mini-program page's logic, each against this build's `scanlogin` binary.
//! Skipped (reported, see `helpers::required`) where Chromium, Node or
//! `web/node_modules` is missing, and any test the suites skip is reported
//! the same way; with `SCANLOGIN_REQUIRE_BROWSER` set, as in CI, either fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::required::{self, Part};

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
        required::missing(
            Part::Browser,
            &format!("the browser suite cannot run: {reason}"),
        );
        return;
    }
    let out = tempfile::NamedTempFile::new().expect("temp file for the suite's output");
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=tap", "web/tests/"]);
    // The hubs the suites start read SCANLOGIN__* settings: none leak in
    // from the caller's environment.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SCANLOGIN__") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
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
    let tests = count(&summary, "tests");
    let skipped = count(&summary, "skipped") + count(&summary, "todo");
    assert!(tests > 0, "node ran no test:\n{report}");
    assert_eq!(
        count(&summary, "pass") + skipped,
        tests,
        "every test passed or was skipped:\n{report}"
    );
    // A skipped `describe` shows as a `# SKIP` line, not always in the counts.
    let which: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("# SKIP") || l.contains("# TODO"))
        .map(str::trim)
        .collect();
    if skipped > 0 || !which.is_empty() {
        required::missing(
            Part::Browser,
            &format!(
                "web tests were skipped ({skipped} of {tests} counted): {}",
                which.join("; ")
            ),
        );
    }
}

/// The number on the summary line `# {what} N` of node's TAP report.
fn count(summary: &[&str], what: &str) -> usize {
    let prefix = format!("# {what} ");
    let found: Vec<usize> = summary
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|n| n.trim().parse().expect("a count"))
        .collect();
    assert_eq!(found.len(), 1, "one `{prefix}N` line: {summary:?}");
    found[0]
}
