//! Logging: `tracing` to stdout, human or JSON lines.

use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogFormat, LogSettings};

/// actix-http logs a connection's malformed request (`stream error:
/// request parse error: ...`) at ERROR: anyone could write ERROR lines at
/// will. Each such connection got a 400 and nothing else happened, so
/// these lines are dropped, whatever `RUST_LOG` says.
fn client_fault(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target() == "actix_http::h1::dispatcher"
}

/// Installs the global subscriber (once; later calls do nothing).
pub fn init(s: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&s.level));
    let not_client_faults = filter_fn(|meta| !client_fault(meta));
    let _ = match s.format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_target(false)
                    .with_filter(not_client_faults),
            )
            .try_init(),
        LogFormat::Human => tracing_subscriber::registry()
            .with(filter)
            .with(
                fmt::layer()
                    .with_target(false)
                    .with_filter(not_client_faults),
            )
            .try_init(),
    };
}

pub mod metrics;
