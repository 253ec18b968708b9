//! Avatars people upload from the mini-program (`chooseAvatar` gives a local
//! file, and WeChat's own avatar URLs are grey placeholders since 2022). The
//! bytes are checked before decoding (declared size and pixel count from the
//! header), decoded with the `image` crate under allocation limits, shrunk to
//! at most [`MAX_SIDE`] pixels a side and re-encoded as PNG (which also drops
//! any metadata such as EXIF locations), then kept in the `avatars` table.
//! A scene holds at most one avatar: a second upload replaces the first.
//! An avatar is kept while a user's `avatar_id` names it, or while its
//! scene can still use it (until the scene ends, at most [`UNUSED_KEPT_MS`]
//! after the upload); housekeeping deletes the others.

use std::io::Cursor;

use entity::avatars::{self, Column as C};
use entity::users;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
};

use crate::db::Db;

/// Largest upload accepted, in bytes.
pub const MAX_AVATAR_BYTES: usize = 1024 * 1024;
/// Largest side of a stored avatar, in pixels.
pub const MAX_SIDE: u32 = 256;
/// Largest side an upload may declare.
const MAX_DECLARED_SIDE: u32 = 4096;
/// Most pixels an upload may declare (a 12-megapixel photo passes).
const MAX_DECLARED_PIXELS: u64 = 16 * 1024 * 1024;
/// Most memory the decoder may allocate for one image.
const MAX_DECODE_ALLOC: u64 = 80 * 1024 * 1024;
/// The path under `public_url` where avatars are served.
pub const AVATAR_PATH: &str = "/api/v1/avatars/";
/// Longest an avatar no user shows is kept (its scene may end sooner).
pub const UNUSED_KEPT_MS: i64 = 3600 * 1000;

/// Where an upload goes: the live scanned scene its `mp_token` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarSlot {
    pub scene_id: String,
    /// When the scene expires (Unix ms).
    pub scene_expires_at: i64,
}

/// Why an upload is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AvatarError {
    /// Not `image/png`, `image/jpeg` or `image/webp`.
    #[error("Content-Type must be image/png, image/jpeg or image/webp")]
    UnsupportedType,
    /// The header declares a size past the limits (checked before decoding).
    #[error(
        "the image declares {0} x {1} pixels; at most {MAX_DECLARED_SIDE} a side and {MAX_DECLARED_PIXELS} in all"
    )]
    TooManyPixels(u32, u32),
    /// The bytes do not decode as the declared type.
    #[error("the body is not a decodable {0} image")]
    NotAnImage(&'static str),
    /// Every decoding slot stayed taken for [`DECODE_WAIT`].
    #[error("too many avatars are being decoded; retry in a moment")]
    Busy,
}

/// Avatars decoded at once per node (each may take up to
/// [`MAX_DECODE_ALLOC`] bytes and a core).
const DECODE_SLOTS: usize = 2;
/// How long an upload waits for a decoding slot.
const DECODE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The image format for a `Content-Type` value (parameters ignored).
pub fn format_of(content_type: &str) -> Result<(ImageFormat, &'static str), AvatarError> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/png" => Ok((ImageFormat::Png, "PNG")),
        "image/jpeg" => Ok((ImageFormat::Jpeg, "JPEG")),
        "image/webp" => Ok((ImageFormat::WebP, "WebP")),
        _ => Err(AvatarError::UnsupportedType),
    }
}

/// Checks, decodes and re-encodes an upload: PNG bytes of at most
/// [`MAX_SIDE`] x [`MAX_SIDE`] pixels. CPU-bound: run it off the reactor.
pub fn reencode(content_type: &str, bytes: &[u8]) -> Result<Vec<u8>, AvatarError> {
    let (format, name) = format_of(content_type)?;
    // The header alone first: a small file may declare a huge canvas.
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|_| AvatarError::NotAnImage(name))?;
    if w == 0
        || h == 0
        || w > MAX_DECLARED_SIDE
        || h > MAX_DECLARED_SIDE
        || u64::from(w) * u64::from(h) > MAX_DECLARED_PIXELS
    {
        return Err(AvatarError::TooManyPixels(w, h));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECLARED_SIDE);
    limits.max_image_height = Some(MAX_DECLARED_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let image = reader.decode().map_err(|_| AvatarError::NotAnImage(name))?;
    let image = if image.width() > MAX_SIDE || image.height() > MAX_SIDE {
        image.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        image
    };
    let image = DynamicImage::ImageRgba8(image.to_rgba8());
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|_| AvatarError::NotAnImage(name))?;
    Ok(out)
}

/// A stored avatar.
pub struct Avatar {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The id in an avatar URL this hub handed out (`{public_url}/api/v1/avatars/{id}`).
pub fn own_avatar_id<'a>(public_url: &str, url: &'a str) -> Option<&'a str> {
    let prefix = format!("{}{AVATAR_PATH}", public_url.trim_end_matches('/'));
    url.strip_prefix(&prefix).filter(|id| is_avatar_id(id))
}

/// Whether `id` has the shape of an avatar id (32 lowercase hex digits).
pub fn is_avatar_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads and writes `avatars`.
#[derive(Clone)]
pub struct AvatarStore {
    db: Db,
    decode_slots: std::sync::Arc<tokio::sync::Semaphore>,
}

impl AvatarStore {
    /// The store on `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            decode_slots: std::sync::Arc::new(tokio::sync::Semaphore::new(DECODE_SLOTS)),
        }
    }

    /// The decoding slots (at most [`DECODE_SLOTS`] at once). For tests: a
    /// real decode takes milliseconds, so holding slots is the one
    /// deterministic way to see an upload refused as busy end to end.
    pub fn decode_slots(&self) -> std::sync::Arc<tokio::sync::Semaphore> {
        self.decode_slots.clone()
    }

    /// [`reencode`] on a blocking thread, at most [`DECODE_SLOTS`] at once.
    pub async fn reencode(
        &self,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Vec<u8>, AvatarError> {
        let (_, name) = format_of(content_type)?;
        let slot = tokio::time::timeout(DECODE_WAIT, self.decode_slots.clone().acquire_owned())
            .await
            .map_err(|_| AvatarError::Busy)?
            .map_err(|_| AvatarError::Busy)?;
        let content_type = content_type.to_owned();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            reencode(&content_type, &bytes)
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "avatar decoding stopped");
            AvatarError::NotAnImage(name)
        })?
    }

    /// Stores re-encoded PNG bytes as the scene's avatar, replacing the
    /// one it had (whose id then names nothing), in one statement; returns
    /// the new id. `None` when a user already shows the scene's avatar
    /// (the scene was confirmed meanwhile): nothing is written.
    pub async fn put(
        &self,
        slot: &AvatarSlot,
        png: Vec<u8>,
        now: i64,
    ) -> Result<Option<String>, DbErr> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let row = avatars::ActiveModel {
            id: Set(id.clone()),
            content_type: Set("image/png".into()),
            image: Set(png),
            created_at: Set(now),
            scene_id: Set(Some(slot.scene_id.clone())),
            keep_until: Set(Some(Ord::min(slot.scene_expires_at, now + UNUSED_KEPT_MS))),
        };
        let replace = OnConflict::column(C::SceneId)
            .update_columns([C::Id, C::ContentType, C::Image, C::CreatedAt, C::KeepUntil])
            .action_and_where(Expr::col((avatars::Entity, C::Id)).not_in_subquery(shown()))
            .to_owned();
        let written = avatars::Entity::insert(row)
            .on_conflict(replace)
            .exec_without_returning(self.db.write())
            .await?;
        Ok((written > 0).then_some(id))
    }

    /// The avatar `id`, if kept.
    pub async fn get(&self, id: &str) -> Result<Option<Avatar>, DbErr> {
        if !is_avatar_id(id) {
            return Ok(None);
        }
        Ok(avatars::Entity::find_by_id(id.to_owned())
            .one(self.db.read())
            .await?
            .map(|m| Avatar {
                content_type: m.content_type,
                bytes: m.image,
            }))
    }

    /// Deletes up to `limit` avatars that no user's `avatar_id` names and
    /// that their scene no longer needs: `keep_until` passed, or uploaded
    /// more than [`UNUSED_KEPT_MS`] ago (avatars from before scenes were
    /// recorded have no `keep_until`).
    pub async fn purge_unreferenced(&self, now: i64, limit: u64) -> Result<u64, DbErr> {
        let unneeded = Condition::any()
            .add(C::KeepUntil.lt(now))
            .add(C::CreatedAt.lt(now - UNUSED_KEPT_MS));
        let ids = Query::select()
            .column(C::Id)
            .from(avatars::Entity)
            .cond_where(unneeded)
            .and_where(Expr::col(C::Id).not_in_subquery(shown()))
            .limit(limit)
            .to_owned();
        Ok(avatars::Entity::delete_many()
            .filter(C::Id.in_subquery(ids))
            .exec(self.db.write())
            .await?
            .rows_affected)
    }
}

/// Deletes the avatar `id` (a deleted user's, in the deletion's transaction).
pub async fn delete(conn: &impl ConnectionTrait, id: &str) -> Result<u64, DbErr> {
    Ok(avatars::Entity::delete_many()
        .filter(C::Id.eq(id))
        .exec(conn)
        .await?
        .rows_affected)
}

/// The ids of the avatars users show.
fn shown() -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(users::Column::AvatarId)
        .from(users::Entity)
        .and_where(users::Column::AvatarId.is_not_null())
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::new_rgba8(w, h)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .expect("encode");
        out
    }

    /// CRC-32 (ISO-HDLC), as PNG chunks carry it.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG whose header declares `w` x `h`, with a valid IHDR checksum (so
    /// only the declared size can refuse it before decoding).
    fn declaring(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        // IHDR: length at 8..12, type and data at 12..29, CRC at 29..33.
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    #[test]
    fn huge_declared_sizes_are_refused_before_decoding() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");
        // The header itself is sound: its dimensions read back.
        let sound = ImageReader::with_format(Cursor::new(declaring(4096, 4096)), ImageFormat::Png)
            .into_dimensions()
            .expect("a sound header");
        assert_eq!(sound, (4096, 4096));
        for (w, h) in [(50_000, 50_000), (4097, 1), (1, 4097), (4096, 4096 + 1)] {
            let err = reencode("image/png", &declaring(w, h));
            assert_eq!(err, Err(AvatarError::TooManyPixels(w, h)), "{w}x{h}");
        }
        // At the limit the size passes; the 1-pixel data then does not decode.
        assert_eq!(
            reencode("image/png", &declaring(4096, 4096)),
            Err(AvatarError::NotAnImage("PNG"))
        );
    }

    /// At most [`DECODE_SLOTS`] decodes run at once; an upload that finds
    /// them all taken for [`DECODE_WAIT`] is refused as busy (503), and goes
    /// through once a slot is free.
    #[tokio::test]
    async fn a_third_decode_waits_then_is_refused_as_busy() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let settings = crate::config::DatabaseSettings {
            url: secrecy::SecretString::from(format!(
                "sqlite://{}",
                dir.path().join("hub.db").display()
            )),
            ..Default::default()
        };
        let store = AvatarStore::new(crate::db::open(&settings).await.expect("database"));
        let mut held = Vec::new();
        for _ in 0..DECODE_SLOTS {
            held.push(
                store
                    .decode_slots
                    .clone()
                    .try_acquire_owned()
                    .expect("a free slot"),
            );
        }
        assert!(
            store.decode_slots.clone().try_acquire_owned().is_err(),
            "only {DECODE_SLOTS} slots"
        );
        let started = std::time::Instant::now();
        let busy = store.reencode("image/png", png(2, 2)).await;
        assert_eq!(busy, Err(AvatarError::Busy));
        assert!(started.elapsed() >= DECODE_WAIT, "{:?}", started.elapsed());
        held.pop();
        let out = store
            .reencode("image/png", png(2, 2))
            .await
            .expect("a free slot decodes");
        assert!(image::load_from_memory_with_format(&out, ImageFormat::Png).is_ok());
    }

    #[test]
    fn small_images_pass_and_big_ones_shrink() {
        let out = reencode("image/png; charset=binary", &png(300, 600)).expect("re-encoded");
        let img = image::load_from_memory_with_format(&out, ImageFormat::Png).expect("PNG");
        assert_eq!((img.width(), img.height()), (128, 256));
        assert_eq!(
            reencode("text/plain", &png(1, 1)),
            Err(AvatarError::UnsupportedType)
        );
        assert_eq!(
            reencode("image/jpeg", &png(1, 1)),
            Err(AvatarError::NotAnImage("JPEG"))
        );
    }

    #[test]
    fn own_avatar_ids_are_recognised() {
        let id = "0123456789abcdef0123456789abcdef";
        let url = format!("https://hub.example/api/v1/avatars/{id}");
        assert_eq!(own_avatar_id("https://hub.example/", &url), Some(id));
        assert_eq!(own_avatar_id("https://other.example", &url), None);
        assert_eq!(
            own_avatar_id(
                "https://hub.example",
                "https://hub.example/api/v1/avatars/../x"
            ),
            None
        );
    }
}
