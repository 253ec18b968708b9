//! Parts of the machine some tests need (a PostgreSQL server, `openssl`,
//! Chromium with Node, Python's `openapi-spec-validator`): required where `.ci/run` says so, and never skipped
//! in silence elsewhere.
//!
//! - With `SCANLOGIN_REQUIRE_<PART>` set (CI), a missing part fails the test.
//! - Otherwise the test is skipped, and says so where it cannot be missed:
//!   a `SKIPPED` line is written to the process's own stderr (libtest
//!   captures only `print!`/`eprint!`, so this line shows in every
//!   `cargo test` run, between the `test … ok` lines), and appended to
//!   `target/tmp/skipped-tests.txt` (this run's skips) for a summary after
//!   the run.

use std::io::Write;

use super::POSTGRES_ENV;

/// A part some tests need.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Postgres,
    Openssl,
    Browser,
    OpenapiValidator,
}

impl Part {
    /// The variable that makes this part required.
    pub fn require_env(self) -> &'static str {
        match self {
            Part::Postgres => "SCANLOGIN_REQUIRE_POSTGRES",
            Part::Openssl => "SCANLOGIN_REQUIRE_OPENSSL",
            Part::Browser => "SCANLOGIN_REQUIRE_BROWSER",
            Part::OpenapiValidator => "SCANLOGIN_REQUIRE_OPENAPI_VALIDATOR",
        }
    }

    fn required(self) -> bool {
        std::env::var_os(self.require_env()).is_some_and(|v| !v.is_empty() && v != "0")
    }
}

/// The file every skip is appended to (`target/tmp/skipped-tests.txt`).
pub fn skip_log() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt")
}

/// The current test: libtest names its thread after it.
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("a test")
        .to_owned()
}

/// `part` is missing for `reason`: fails the test when the part is required,
/// else reports the skip where it is seen (see the module documentation).
/// The caller returns afterwards.
pub fn missing(part: Part, reason: &str) {
    let test = test_name();
    assert!(
        !part.required(),
        "{test}: {part:?} is required here ({} is set) but missing: {reason}",
        part.require_env()
    );
    let line = format!(
        "SKIPPED {test}: {reason} (set {} to make this a failure)\n",
        part.require_env()
    );
    // Straight to fd 2: `eprintln!` would be captured and hidden.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    // The file lists this run's skips: the first skip of a run empties it.
    static FIRST: std::sync::Once = std::sync::Once::new();
    FIRST.call_once(|| {
        let _ = std::fs::remove_file(skip_log());
    });
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_log())
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The admin URL of the PostgreSQL server tests create databases on, or
/// `None` after reporting the skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            missing(Part::Postgres, &format!("{POSTGRES_ENV} is not set"));
            None
        }
    }
}

/// Whether `openssl` runs here (a skip is reported when it does not).
pub fn openssl() -> bool {
    let runs = std::process::Command::new("openssl")
        .arg("version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        missing(Part::Openssl, "the openssl command is not available");
    }
    runs
}
