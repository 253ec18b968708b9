//! The hub as an OpenID Connect provider (docs/api.md "OpenID Connect provider"):
//! authorization code flow with PKCE S256, the hub's own authorize page that
//! shows the code, one-time codes, short-lived access tokens for userinfo,
//! and RS256 ID tokens. The phone side is the ordinary login flow: the page's
//! widget gets a ticket, which is redeemed here (through the flow's
//! [`Redeemer`]) for the client it was made for, and the person's identity becomes the code's claims.
//!
//! The request is checked and ended in `authorize`, the code exchanged (and
//! userinfo answered) in `token`, the metadata published in `discovery`;
//! `store` keeps the grants and tokens, `keys` the signing keys. Which
//! `redirect_uris` may be configured is `crate::config`'s to say.

pub mod claims;
pub mod error;
pub mod keys;
pub mod store;

mod authorize;
mod discovery;
mod token;

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::clock::now_ms;
use crate::config::Settings;
use crate::db::Db;
use crate::error::Fault;
use crate::live::LiveSettings;
use crate::login::{Purge, Redeemer};
use crate::sealed::Sealer;

pub use self::authorize::{AuthorizeRefusal, Completion, PendingAuthorization};
pub use self::discovery::Discovery;
pub use self::error::OAuthError;
use self::keys::{KeyError, SigningKeys};
use self::store::GrantStore;
pub use self::token::{TokenAnswer, TokenRequest};

/// How long an authorization code works.
pub const CODE_TTL_SECS: i64 = 60;
/// How long an access token works (userinfo only).
pub const ACCESS_TOKEN_TTL_SECS: i64 = 600;
/// How long an ID token is valid.
pub const ID_TOKEN_TTL_SECS: i64 = 600;
/// How long the authorize page can wait for the person (the widget makes a
/// new code when one expires).
pub const PENDING_TTL_SECS: i64 = 900;
/// Scopes the hub knows; others are ignored.
pub const SCOPES: [&str; 3] = ["openid", "profile", "phone"];

/// The issuer: `server.public_url` without a trailing slash.
pub fn issuer(settings: &Settings) -> String {
    settings
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}

/// The provider.
pub struct Oidc {
    settings: LiveSettings,
    /// Redeems the ticket the authorize page's widget got.
    redeemer: Arc<Redeemer>,
    keys: SigningKeys,
    grants: GrantStore,
}

impl From<KeyError> for Fault {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Db(db) => db.into(),
            other => Fault::internal("signing keys").because(other),
        }
    }
}

impl From<KeyError> for OAuthError {
    fn from(e: KeyError) -> Self {
        Self::Fault(e.into())
    }
}

impl Oidc {
    /// The provider on `db`, redeeming tickets through `redeemer`.
    pub fn new(settings: LiveSettings, db: Db, sealer: Sealer, redeemer: Arc<Redeemer>) -> Self {
        Self {
            keys: SigningKeys::new(db.clone(), sealer),
            grants: GrantStore::new(db),
            settings,
            redeemer,
        }
    }

    /// The signing keys (made on first start, rotated by `rotate-keys`).
    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    /// The issuer identifier.
    pub fn issuer(&self) -> String {
        issuer(&self.settings.load())
    }

    /// Deletes grants and tokens expired over an hour ago, in batches.
    pub async fn purge(&self, batch: u64) -> Result<u64, sea_orm::DbErr> {
        let cutoff = now_ms() - (ACCESS_TOKEN_TTL_SECS.max(3600) * 1000);
        let mut total = 0;
        for _ in 0..100 {
            let n = self.grants.purge_before(cutoff, batch).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }
}

/// The sweeper deletes expired grants and tokens on its purge rounds.
impl Purge for Oidc {
    fn what(&self) -> &'static str {
        "OpenID Connect"
    }

    fn purge(&self, batch: u64) -> BoxFuture<'_, Result<u64, sea_orm::DbErr>> {
        Box::pin(Oidc::purge(self, batch))
    }
}

/// `scanlogin rotate-keys`: opens the database (migrating it when
/// configured), makes a new current signing key and says which.
pub async fn rotate_keys(settings: &Settings) -> anyhow::Result<keys::KeyInfo> {
    let key = crate::keys::ServerKey::of(&settings.server)?;
    if settings.database.migrate_on_start {
        crate::db::migrate_database(&settings.database).await?;
    }
    let db = crate::db::open(&settings.database).await?;
    let keys = SigningKeys::new(db.clone(), Sealer::new(&key));
    let made = keys.rotate().await;
    let _ = db.close().await;
    Ok(made?)
}
