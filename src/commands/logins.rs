//! `scanlogin logins`: the login history, one JSON object a line.

use std::io::Write;
use std::process::ExitCode;

use scanlogin::Settings;
use scanlogin::login_history::{LoginFilter, LoginLine, page};

/// `scanlogin logins [--user ID] [--client ID] [--since RFC3339]`: read in
/// pages, so a long history never sits in memory whole.
pub async fn print(settings: &Settings, filter: &LoginFilter) -> ExitCode {
    let db = match super::connect(settings).await {
        Ok(db) => db,
        Err(code) => return code,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = None;
    let done = loop {
        let rows = match page(&db, filter, after.as_ref(), 500).await {
            Ok(rows) => rows,
            Err(e) => break Err(format!("reading the login history failed: {e}")),
        };
        let Some(last) = rows.last() else {
            break Ok(());
        };
        after = Some((last.at, last.scene_id.clone()));
        let written = rows.into_iter().try_for_each(|row| {
            let line =
                serde_json::to_string(&LoginLine::from(row)).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")
        });
        if let Err(e) = written {
            break Err(format!("writing failed: {e}"));
        }
    };
    let done = done.and_then(|()| out.flush().map_err(|e| format!("writing failed: {e}")));
    let _ = db.close().await;
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
