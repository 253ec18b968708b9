//! Remembered `jscode2session` exchanges (the `code_exchanges` table). A
//! `wx.login` code works once at WeChat, so a client's retry with the same
//! code is answered from here for 5 minutes, and the row also notes what the
//! code was used for ([`CodeUse`]) so the retried call can give the same
//! answer; both are written by the step's own transaction ([`CodeNote`]).
//! A call holds its code ([`HeldCode`]: the code's hash, taken once, and the
//! one lock on it) from after it reads its scene until it returns, so a
//! retry sent meanwhile waits and then reads what the first one did. Any
//! WeChat code is checked for its shape first ([`check_code`]).

use std::sync::Arc;

use entity::code_exchanges::{self, Column as C};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::LoginError;
use crate::clock::now_ms;
use crate::db::Db;
use crate::locks::{KeyGuard, KeyedLocks};
use crate::sealed::Sealer;
use crate::wechat::{WechatClient, WechatError, WxSession};

/// How long an exchange is remembered (a code's own life).
pub const REMEMBER_MS: i64 = 5 * 60 * 1000;

/// A person's WeChat session as the hub knows it after a code exchange.
#[derive(Clone)]
pub struct Exchange {
    pub app_id: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub session_key: SecretString,
    /// What this code already did on its scene.
    pub used_for: Option<CodeUse>,
}

/// What a code did on its scene, noted after the call so that a retry with
/// the same code gets the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeUse {
    Scan,
    Confirm,
    Cancel,
}

impl CodeUse {
    /// The value stored in `code_exchanges.outcome`.
    fn as_str(self) -> &'static str {
        match self {
            Self::Scan => "scan",
            Self::Confirm => "confirm",
            Self::Cancel => "cancel",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::Scan, Self::Confirm, Self::Cancel]
            .into_iter()
            .find(|u| u.as_str() == s)
    }
}

/// Refuses a WeChat code (`field`: a `wx.login` code, a `getPhoneNumber`
/// code) that cannot be one, before it is hashed or sent anywhere.
pub fn check_code(field: &str, code: &str) -> Result<(), LoginError> {
    if code.is_empty() || code.len() > 256 {
        return Err(LoginError::InvalidRequest(format!(
            "{field} must be 1-256 characters"
        )));
    }
    Ok(())
}

/// A code held by one call: the app it belongs to, its hash and the lock
/// on that hash, released when the call drops it.
pub struct HeldCode {
    app_id: String,
    code: SecretString,
    hash: String,
    _turn: KeyGuard,
}

/// Exchanges codes at most once. Session keys are stored sealed.
pub struct CodeExchanges {
    db: Db,
    wechat: Arc<WechatClient>,
    locks: KeyedLocks,
    sealer: Sealer,
}

/// Where an exchange's session key is sealed: its column and row.
fn session_key_context(code_hash: &str) -> String {
    format!("code_exchanges.session_key:{code_hash}")
}

impl CodeExchanges {
    /// Exchanges through `wechat`, remembered in `db`.
    pub fn new(db: Db, wechat: Arc<WechatClient>, sealer: Sealer) -> Self {
        Self {
            db,
            wechat,
            locks: KeyedLocks::default(),
            sealer,
        }
    }

    /// Waits for the code's turn: every call carrying the same code (of the
    /// same app) runs one after the other.
    pub async fn hold(&self, app_id: &str, code: &str) -> HeldCode {
        let hash = code_hash(app_id, code);
        let turn = self.locks.lock(&hash).await;
        HeldCode {
            app_id: app_id.to_owned(),
            code: SecretString::from(code.to_owned()),
            hash,
            _turn: turn,
        }
    }

    /// The session behind the held code, asking WeChat only the first time,
    /// and what the call must write about the code ([`CodeNote`], in the
    /// transaction of the step it takes). A code belongs to the first scene
    /// (or use, `bound_to`) it is presented with: presented again for
    /// another it is refused, as WeChat would refuse a spent code.
    pub async fn exchange(
        &self,
        held: &HeldCode,
        bound_to: &str,
    ) -> Result<(Exchange, CodeNote), ExchangeError> {
        let (app_id, hash) = (held.app_id.as_str(), &held.hash);
        if let Some((found, first_scene)) = self.remembered(hash).await? {
            if first_scene != bound_to {
                return Err(ExchangeError::UsedElsewhere);
            }
            let note = CodeNote {
                hash: hash.clone(),
                fresh: None,
            };
            return Ok((found, note));
        }
        let WxSession {
            openid,
            unionid,
            session_key,
        } = self
            .wechat
            .code_to_session(app_id, held.code.expose_secret())
            .await?;
        let now = now_ms();
        let row = code_exchanges::ActiveModel {
            code_hash: Set(hash.clone()),
            app_id: Set(app_id.to_owned()),
            openid: Set(openid.clone()),
            unionid: Set(unionid.clone()),
            session_key: Set(self
                .sealer
                .seal_str(&session_key_context(hash), session_key.expose_secret())),
            created_at: Set(now),
            expires_at: Set(now + REMEMBER_MS),
            scene_id: Set(Some(bound_to.to_owned())),
            outcome: Set(None),
        };
        let exchange = Exchange {
            app_id: app_id.to_owned(),
            openid,
            unionid,
            session_key,
            used_for: None,
        };
        let note = CodeNote {
            hash: hash.clone(),
            fresh: Some(row),
        };
        Ok((exchange, note))
    }

    async fn remembered(&self, hash: &str) -> Result<Option<(Exchange, String)>, DbErr> {
        let row = code_exchanges::Entity::find_by_id(hash.to_owned())
            .filter(C::ExpiresAt.gt(now_ms()))
            .one(self.db.read())
            .await?;
        Ok(row.and_then(|m| {
            // A key sealed under another server key cannot be used: the
            // exchange counts as forgotten.
            let session_key = self
                .sealer
                .open_str(&session_key_context(&m.code_hash), &m.session_key)
                .inspect_err(|e| tracing::warn!(error = %e, "remembered session key does not open"))
                .ok()?;
            let first_scene = m.scene_id.unwrap_or_default();
            let exchange = Exchange {
                app_id: m.app_id,
                openid: m.openid,
                unionid: m.unionid,
                session_key: SecretString::from(session_key),
                used_for: m.outcome.as_deref().and_then(CodeUse::parse),
            };
            Some((exchange, first_scene))
        }))
    }
}

/// Deletes exchanges that expired before `cutoff`, at most `limit` rows
/// (housekeeping, which holds no WeChat client).
pub async fn purge_before(db: &Db, cutoff: i64, limit: u64) -> Result<u64, DbErr> {
    let ids = sea_orm::sea_query::Query::select()
        .column(C::CodeHash)
        .from(code_exchanges::Entity)
        .and_where(C::ExpiresAt.lt(cutoff))
        .limit(limit)
        .to_owned();
    let res = code_exchanges::Entity::delete_many()
        .filter(C::CodeHash.in_subquery(ids))
        .exec(db.write())
        .await?;
    Ok(res.rows_affected)
}

/// What a call writes about its code, in the transaction of the step it
/// took (or on its own when it took none): the exchange, when WeChat was
/// just asked, and what the code did, so that a retry with the same code
/// is answered from memory with the same answer.
pub struct CodeNote {
    hash: String,
    /// The exchange's row, not yet stored.
    fresh: Option<code_exchanges::ActiveModel>,
}

impl CodeNote {
    /// Writes the note on `conn`: the new exchange with `used` as its
    /// outcome, or `used` on a remembered one that has none yet (first use
    /// wins). Nothing when there is nothing to say.
    pub async fn write(
        self,
        conn: &impl ConnectionTrait,
        used: Option<CodeUse>,
    ) -> Result<(), DbErr> {
        let outcome = used.map(|u| u.as_str().to_owned());
        match (self.fresh, outcome) {
            (Some(mut row), outcome) => {
                row.outcome = Set(outcome);
                // A stale row of the same hash (older than 5 minutes) is replaced.
                code_exchanges::Entity::insert(row)
                    .on_conflict(
                        OnConflict::column(C::CodeHash)
                            .update_columns([
                                C::AppId,
                                C::Openid,
                                C::Unionid,
                                C::SessionKey,
                                C::CreatedAt,
                                C::ExpiresAt,
                                C::SceneId,
                                C::Outcome,
                            ])
                            .to_owned(),
                    )
                    .exec_without_returning(conn)
                    .await?;
            }
            (None, Some(outcome)) => {
                code_exchanges::Entity::update_many()
                    .col_expr(C::Outcome, outcome.into())
                    .filter(C::CodeHash.eq(self.hash))
                    .filter(C::Outcome.is_null())
                    .exec(conn)
                    .await?;
            }
            (None, None) => {}
        }
        Ok(())
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Wechat(#[from] WechatError),
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("this code was already used for another scene; call wx.login again")]
    UsedElsewhere,
}

impl From<ExchangeError> for LoginError {
    fn from(e: ExchangeError) -> Self {
        match e {
            ExchangeError::Wechat(w) => w.into(),
            ExchangeError::Db(d) => d.into(),
            ExchangeError::UsedElsewhere => {
                Self::InvalidRequest(ExchangeError::UsedElsewhere.to_string())
            }
        }
    }
}

/// The stored key of a code: a hash, so the table never holds usable codes.
fn code_hash(app_id: &str, code: &str) -> String {
    let mut sha = Sha256::new();
    sha.update(app_id.as_bytes());
    sha.update([0]);
    sha.update(code.as_bytes());
    hex::encode(sha.finalize())
}
