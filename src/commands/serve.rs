//! `scanlogin serve`: the hub until SIGTERM or SIGINT, reloading its
//! configuration on SIGHUP and telling systemd (`Type=notify-reload`) how it
//! is doing, its watchdog included.

use std::path::PathBuf;
use std::process::ExitCode;

use scanlogin::{Application, Settings, telemetry};

/// Runs the hub on `settings`; a SIGHUP reads `config` (and the environment)
/// again.
pub async fn serve(settings: Settings, config: PathBuf) -> ExitCode {
    telemetry::init(&settings.log);
    for w in settings.warnings() {
        tracing::warn!("{w}");
    }
    // Taken before anything else, so a SIGHUP from now on reloads (and
    // never ends the process, SIGHUP's default).
    let hangups = hangups();
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Listening and migrated: tell systemd (Type=notify). Outside systemd
    // (no NOTIFY_SOCKET) these calls do nothing.
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "sd_notify READY failed");
    }
    let token = app.shutdown_token();
    tokio::spawn(reload_on_hangup(
        hangups,
        app.reloader(),
        config,
        token.clone(),
    ));
    if let Some(every) = sd_notify::watchdog_enabled() {
        tokio::spawn(watchdog(every / 2, token.clone()));
    }
    let stop = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = wait_for_signal() => tracing::info!("shutdown requested"),
            _ = stop.cancelled() => {}
        }
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        stop.cancel();
    });
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGHUP's stream (`None` where there is none).
#[cfg(unix)]
fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "no SIGHUP handler; reloads are off"))
        .ok()
}

#[cfg(not(unix))]
fn hangups() -> Option<()> {
    None
}

/// On each SIGHUP until shutdown, reloads the configuration `config` (and
/// the environment), telling systemd (`Type=notify-reload`) `RELOADING=1`
/// with `MONOTONIC_USEC` first and `READY=1` after, applied or refused.
#[cfg(unix)]
async fn reload_on_hangup(
    hangups: Option<tokio::signal::unix::Signal>,
    reloader: std::sync::Arc<scanlogin::startup::Reloader>,
    config: PathBuf,
    token: tokio_util::sync::CancellationToken,
) {
    use sd_notify::NotifyState;
    let Some(mut hangups) = hangups else {
        return;
    };
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            got = hangups.recv() => if got.is_none() { break },
        }
        tracing::info!(config = %config.display(), "reload requested (SIGHUP)");
        let mut states = vec![NotifyState::Reloading];
        match NotifyState::monotonic_usec_now() {
            Ok(now) => states.push(now),
            Err(e) => tracing::warn!(error = %e, "no monotonic clock for MONOTONIC_USEC"),
        }
        if let Err(e) = sd_notify::notify(&states) {
            tracing::warn!(error = %e, "sd_notify RELOADING failed");
        }
        // Reading the file (and a GeoIP database) blocks: off the workers.
        let (reloader, path) = (reloader.clone(), config.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || reloader.reload(&path)).await {
            tracing::error!(error = %e, "the reload failed");
        }
        if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
            tracing::warn!(error = %e, "sd_notify READY failed");
        }
    }
}

#[cfg(not(unix))]
async fn reload_on_hangup(
    _hangups: Option<()>,
    _reloader: std::sync::Arc<scanlogin::startup::Reloader>,
    _config: PathBuf,
    _token: tokio_util::sync::CancellationToken,
) {
}

/// Pings systemd's watchdog while the runtime is alive and not stopping.
async fn watchdog(every: std::time::Duration, token: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tick.tick() => {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
