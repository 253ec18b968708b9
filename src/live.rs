//! Values a reload replaces whole (the settings, the rate limits, the GeoIP
//! reader): a reader takes the current one with one atomic load
//! (`arc_swap`), never a lock, and keeps what it loaded for as long as it
//! needs it, so a request started before a reload finishes on the old value.

use std::ops::Deref;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::config::{AppSettings, ClientSettings, Settings};

/// A shared value that a reload swaps; clones share it.
pub struct Live<T>(Arc<ArcSwap<T>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Live<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// Shares `value`.
    pub fn from_arc(value: Arc<T>) -> Self {
        Self(Arc::new(ArcSwap::new(value)))
    }

    /// The current value, for a short look (one atomic load).
    pub fn load(&self) -> Guard<Arc<T>> {
        self.0.load()
    }

    /// The current value, to keep (across an `.await`, say).
    pub fn get(&self) -> Arc<T> {
        self.0.load_full()
    }

    /// Replaces the value for every later reader.
    pub fn set(&self, value: Arc<T>) {
        self.0.store(value);
    }
}

/// The settings in force.
pub type LiveSettings = Live<Settings>;

/// One client of one settings snapshot, owned (so it outlives a reload).
pub struct ClientRef {
    settings: Arc<Settings>,
    index: usize,
}

impl ClientRef {
    /// The client `client_id` in `settings`.
    pub fn find(settings: Arc<Settings>, client_id: &str) -> Option<Self> {
        let index = settings
            .clients
            .iter()
            .position(|c| c.client_id == client_id)?;
        Some(Self { settings, index })
    }

    /// The settings the client was found in.
    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }
}

impl Deref for ClientRef {
    type Target = ClientSettings;

    fn deref(&self) -> &ClientSettings {
        &self.settings.clients[self.index]
    }
}

/// One app of one settings snapshot, owned (so it outlives a reload).
pub struct AppRef {
    settings: Arc<Settings>,
    index: usize,
}

impl AppRef {
    /// The app `app_id` (the first app when `None`) in `settings`.
    pub fn find(settings: Arc<Settings>, app_id: Option<&str>) -> Option<Self> {
        let index = match app_id {
            None if settings.apps.is_empty() => return None,
            None => 0,
            Some(id) => settings.apps.iter().position(|a| a.app_id == id)?,
        };
        Some(Self { settings, index })
    }
}

impl Deref for AppRef {
    type Target = AppSettings;

    fn deref(&self) -> &AppSettings {
        &self.settings.apps[self.index]
    }
}
