//! Avatars the phone uploads ([`Avatars`]): the upload's token checked
//! against a scanned scene before the body is read, the image re-encoded
//! and stored as the scene's, and stored avatars served.

use std::sync::Arc;

use tracing::info;

use super::LoginError;
use crate::avatars::{AVATAR_PATH, Avatar, AvatarError, AvatarSlot, AvatarStore};
use crate::clock::now_ms;
use crate::db::Db;
use crate::error::Fault;
use crate::keys::token_hash;
use crate::live::LiveSettings;
use crate::scene::SceneStore;

/// Uploaded avatars: who may upload (the phone of a scanned scene), the
/// re-encoding, the store.
pub struct Avatars {
    /// The settings in force (`server.public_url` for an avatar's URL).
    settings: LiveSettings,
    scenes: SceneStore,
    avatars: AvatarStore,
}

impl Avatars {
    /// Avatars stored in `db`, for the scenes in `scenes`.
    pub fn new(settings: LiveSettings, db: Db, scenes: SceneStore) -> Self {
        Self {
            settings,
            avatars: AvatarStore::new(db),
            scenes,
        }
    }

    /// The avatar store's decoding slots (for tests: see
    /// [`AvatarStore::decode_slots`]).
    pub fn decode_slots(&self) -> Arc<tokio::sync::Semaphore> {
        self.avatars.decode_slots()
    }

    /// The scene an avatar upload goes to; refuses a token that is not the
    /// `mp_token` of a live scanned scene (before the body is read).
    pub async fn check_token(&self, mp_token: &str) -> Result<AvatarSlot, LoginError> {
        match self
            .scenes
            .scanned_with_token(&token_hash(mp_token), now_ms())
            .await?
        {
            Some((scene_id, scene_expires_at)) => Ok(AvatarSlot {
                scene_id,
                scene_expires_at,
            }),
            None => Err(not_scanned()),
        }
    }

    /// Checks and re-encodes an uploaded avatar: PNG bytes to store.
    pub async fn reencode(
        &self,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, LoginError> {
        self.avatars
            .reencode(content_type, bytes)
            .await
            .map_err(|e| match e {
                AvatarError::UnsupportedType => LoginError::UnsupportedMediaType(e.to_string()),
                AvatarError::Busy => Fault::unavailable("avatar re-encoding").because(e).into(),
                other => LoginError::InvalidRequest(other.to_string()),
            })
    }

    /// Stores a re-encoded avatar as the scene's (after
    /// [`Self::check_token`]; it replaces the scene's previous one);
    /// returns its absolute URL.
    pub async fn store(&self, slot: &AvatarSlot, png: Vec<u8>) -> Result<String, LoginError> {
        let id = self
            .avatars
            .put(slot, png, now_ms())
            .await?
            .ok_or_else(not_scanned)?;
        info!(avatar_id = %id, scene_id = %slot.scene_id, "avatar stored");
        let settings = self.settings.load();
        let base = settings.server.public_url.as_str();
        Ok(format!("{}{AVATAR_PATH}{id}", base.trim_end_matches('/')))
    }

    /// A stored avatar.
    pub async fn get(&self, id: &str) -> Result<Avatar, LoginError> {
        self.avatars
            .get(id)
            .await?
            .ok_or(LoginError::NotFound("no such avatar"))
    }
}

fn not_scanned() -> LoginError {
    LoginError::InvalidToken("mp_token is not the token of a scanned scene")
}
