//! ID token signing keys: RSA 2048 made on first start, kept in the database
//! (the private key sealed under a key derived from `server.secret_key`) so
//! every node signs with the same key, and rotated by `scanlogin rotate-keys`.
//! The highest generation signs; an older key stays in the JWKS until the
//! tokens it signed have expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use entity::oidc_keys::{self, Column as C};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;

use crate::clock::now_ms;
use crate::db::Db;
use crate::sealed::Sealer;

use super::ID_TOKEN_TTL_SECS;

/// Where sealed private keys live (the context they are sealed for).
const SEAL_CONTEXT: &str = "oidc_keys.private_key";
/// How long a replaced key stays published: its last tokens' lifetime plus
/// five minutes for clocks and caches.
const RETIRED_KEY_MS: i64 = (ID_TOKEN_TTL_SECS + 300) * 1000;

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("signing key {0}: {1}")]
    Bad(String, String),
    #[error("no signing key in the database")]
    Missing,
}

/// A usable signing key.
struct LoadedKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

/// The signing keys of every node (a cache of decrypted keys by generation).
pub struct SigningKeys {
    db: Db,
    sealer: Sealer,
    loaded: Mutex<HashMap<i64, Arc<LoadedKey>>>,
}

/// One key's public facts, for `rotate-keys` to print.
#[derive(Debug, Serialize, FromQueryResult)]
pub struct KeyInfo {
    pub generation: i64,
    pub kid: String,
}

/// A key's row as publishing reads it (by column name).
#[derive(FromQueryResult)]
struct PublishedRow {
    generation: i64,
    kid: String,
    created_at: i64,
}

/// A key's sealed private half.
#[derive(FromQueryResult)]
struct SealedRow {
    kid: String,
    private_key: String,
}

impl SigningKeys {
    /// Keys read from (and made in) `db`, sealed with `sealer`.
    pub fn new(db: Db, sealer: Sealer) -> Self {
        Self {
            db,
            sealer,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the first key unless one exists. Nodes starting together each
    /// try to insert generation 1; one insert wins and all use that row.
    pub async fn ensure(&self) -> Result<KeyInfo, KeyError> {
        if let Some(current) = self.current_row().await? {
            return Ok(current);
        }
        self.insert_generation(1).await?;
        self.current_row().await?.ok_or(KeyError::Missing)
    }

    /// Makes a new current key; older keys stay published until their
    /// tokens expire, and keys retired longer ago are deleted.
    pub async fn rotate(&self) -> Result<KeyInfo, KeyError> {
        let next = self.current_row().await?.map_or(1, |k| k.generation + 1);
        self.insert_generation(next).await?;
        let published = self.published_rows().await?;
        if let Some(oldest) = published.last() {
            oidc_keys::Entity::delete_many()
                .filter(C::Generation.lt(oldest.generation))
                .exec(self.db.write())
                .await?;
        }
        self.current_row().await?.ok_or(KeyError::Missing)
    }

    /// Signs `claims` as a JWT with the current key (RS256, `kid` set).
    pub async fn sign(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        let row = self.current_row().await?.ok_or(KeyError::Missing)?;
        let key = self.load(row.generation).await?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| KeyError::Bad(key.kid.clone(), e.to_string()))
    }

    /// The published public keys: the current one and those replaced less
    /// than the ID token lifetime (plus leeway) ago.
    pub async fn jwks(&self) -> Result<JwkSet, KeyError> {
        let published = self.published_rows().await?;
        let mut keys = Vec::new();
        for row in &published {
            keys.push(self.load(row.generation).await?.jwk.clone());
        }
        // Keys no longer published are no longer needed in memory either.
        if let Ok(mut map) = self.loaded.lock() {
            map.retain(|g, _| published.iter().any(|p| p.generation == *g));
        }
        Ok(JwkSet { keys })
    }

    async fn current_row(&self) -> Result<Option<KeyInfo>, DbErr> {
        oidc_keys::Entity::find()
            .select_only()
            .columns([C::Generation, C::Kid])
            .order_by_desc(C::Generation)
            .into_model::<KeyInfo>()
            .one(self.db.read())
            .await
    }

    /// Newest first; each key is published until its successor is older
    /// than `RETIRED_KEY_MS`.
    async fn published_rows(&self) -> Result<Vec<KeyInfo>, DbErr> {
        let rows = oidc_keys::Entity::find()
            .select_only()
            .columns([C::Generation, C::Kid, C::CreatedAt])
            .order_by_desc(C::Generation)
            .limit(64)
            .into_model::<PublishedRow>()
            .all(self.db.read())
            .await?;
        let now = now_ms();
        let mut out = Vec::new();
        let mut successor_created: Option<i64> = None;
        for PublishedRow {
            generation,
            kid,
            created_at,
        } in rows
        {
            if successor_created.is_some_and(|t| t + RETIRED_KEY_MS <= now) {
                break;
            }
            out.push(KeyInfo { generation, kid });
            successor_created = Some(created_at);
        }
        Ok(out)
    }

    /// Makes a key and inserts it as `generation` unless that generation
    /// exists already (another node or command was first: theirs is kept).
    async fn insert_generation(&self, generation: i64) -> Result<(), KeyError> {
        let made = tokio::task::spawn_blocking(make_key)
            .await
            .map_err(|e| KeyError::Bad("new".into(), e.to_string()))??;
        let row = oidc_keys::ActiveModel {
            generation: Set(generation),
            kid: Set(made.kid.clone()),
            private_key: Set(self
                .sealer
                .seal(&seal_context(&made.kid), made.pem.as_bytes())),
            created_at: Set(now_ms()),
        };
        oidc_keys::Entity::insert(row)
            .on_conflict(OnConflict::column(C::Generation).do_nothing().to_owned())
            .exec_without_returning(self.db.write())
            .await?;
        Ok(())
    }

    /// The decrypted key of `generation`, from the cache or the database.
    async fn load(&self, generation: i64) -> Result<Arc<LoadedKey>, KeyError> {
        if let Some(k) = self.cached(generation) {
            return Ok(k);
        }
        let row = oidc_keys::Entity::find()
            .select_only()
            .columns([C::Kid, C::PrivateKey])
            .filter(C::Generation.eq(generation))
            .into_model::<SealedRow>()
            .one(self.db.read())
            .await?;
        let SealedRow {
            kid,
            private_key: sealed,
        } = row.ok_or(KeyError::Missing)?;
        let pem = self
            .sealer
            .open(&seal_context(&kid), &sealed)
            .map_err(|e| KeyError::Bad(kid.clone(), e.to_string()))?;
        let key = Arc::new(parse_key(&kid, &pem)?);
        if let Ok(mut map) = self.loaded.lock() {
            map.insert(generation, key.clone());
        }
        Ok(key)
    }

    fn cached(&self, generation: i64) -> Option<Arc<LoadedKey>> {
        self.loaded.lock().ok()?.get(&generation).cloned()
    }
}

/// A key is sealed for its own row, so a sealed key copied into another row
/// does not open.
fn seal_context(kid: &str) -> String {
    format!("{SEAL_CONTEXT}:{kid}")
}

struct MadeKey {
    kid: String,
    pem: String,
}

/// A fresh RSA 2048 key as PKCS#8 PEM; its `kid` is its RFC 7638 thumbprint.
fn make_key() -> Result<MadeKey, KeyError> {
    let bad = |e: String| KeyError::Bad("new".into(), e);
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|e| bad(e.to_string()))?;
    let der = pair.as_der().map_err(|e| bad(e.to_string()))?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
    let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let jwk =
        Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|e| bad(e.to_string()))?;
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|e| bad(e.to_string()))?;
    Ok(MadeKey { kid, pem })
}

fn parse_key(kid: &str, pem: &[u8]) -> Result<LoadedKey, KeyError> {
    let bad = |e: jsonwebtoken::errors::Error| KeyError::Bad(kid.to_owned(), e.to_string());
    let encoding = EncodingKey::from_rsa_pem(pem).map_err(bad)?;
    let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(bad)?;
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(LoadedKey {
        kid: kid.to_owned(),
        encoding,
        jwk,
    })
}
