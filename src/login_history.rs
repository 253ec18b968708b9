//! The login history (SPEC v3 "The person's account"): the only code
//! touching `login_history`. Each confirmed login is one row, written in the
//! confirm's transaction (one per scene), kept
//! `housekeeping.login_history_days` and deleted in batches by the
//! housekeeping; `scanlogin logins` reads it.

use entity::login_history::{self as history, Column as C};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;

use crate::clock::rfc3339;
use crate::geoip::{GeoIp, Location};

/// One confirmed login as the confirm knows it before its transaction
/// (the user is known only inside).
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub scene_id: String,
    pub client_id: String,
    pub at: i64,
    /// The address that created the scene.
    pub ip: String,
    pub user_agent: String,
    /// The browser's place, with `[geoip]`.
    pub location: Option<Location>,
}

impl LoginRecord {
    /// A confirm of `row` at `now`: the browser that created the scene, and
    /// its place when a `[geoip]` database is given.
    pub fn of(row: &entity::scenes::Model, now: i64, geoip: Option<&GeoIp>) -> Self {
        Self {
            scene_id: row.id.clone(),
            client_id: row.client_id.clone(),
            at: now,
            ip: row.browser_ip.clone(),
            user_agent: row.browser_user_agent.clone(),
            location: geoip.and_then(|g| g.locate_str(&row.browser_ip)),
        }
    }
}

/// Records that `user_id` logged in (in the caller's transaction; a scene
/// already recorded is left as it is).
pub async fn record(
    conn: &impl ConnectionTrait,
    user_id: &str,
    login: &LoginRecord,
) -> Result<(), DbErr> {
    let place = login.location.clone().unwrap_or_default();
    let row = history::ActiveModel {
        scene_id: Set(login.scene_id.clone()),
        user_id: Set(user_id.to_owned()),
        client_id: Set(login.client_id.clone()),
        at: Set(login.at),
        ip: Set(login.ip.clone()),
        user_agent: Set(login.user_agent.clone()),
        country: Set(place.country),
        region: Set(place.region),
        city: Set(place.city),
    };
    history::Entity::insert(row)
        .on_conflict(OnConflict::column(C::SceneId).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Which logins to list; every field given must match.
#[derive(Debug, Clone, Default)]
pub struct LoginFilter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    /// At or after this time (ms).
    pub since: Option<i64>,
}

/// Where the previous page ended: its last row's `(at, scene_id)`.
pub type Cursor = (i64, String);

/// Up to `limit` logins matching `filter`, oldest first, after `after`.
pub async fn page(
    conn: &impl ConnectionTrait,
    filter: &LoginFilter,
    after: Option<&Cursor>,
    limit: u64,
) -> Result<Vec<history::Model>, DbErr> {
    let mut q = history::Entity::find();
    if let Some(user) = &filter.user_id {
        q = q.filter(C::UserId.eq(user.as_str()));
    }
    if let Some(client) = &filter.client_id {
        q = q.filter(C::ClientId.eq(client.as_str()));
    }
    if let Some(since) = filter.since {
        q = q.filter(C::At.gte(since));
    }
    if let Some((at, scene)) = after {
        q = q.filter(
            Condition::any().add(C::At.gt(*at)).add(
                Condition::all()
                    .add(C::At.eq(*at))
                    .add(C::SceneId.gt(scene.as_str())),
            ),
        );
    }
    q.order_by_asc(C::At)
        .order_by_asc(C::SceneId)
        .limit(limit)
        .all(conn)
        .await
}

/// Deletes up to `limit` logins older than `cutoff` (ms); returns how many.
pub async fn purge_before(
    conn: &impl ConnectionTrait,
    cutoff: i64,
    limit: u64,
) -> Result<u64, DbErr> {
    let ids = Query::select()
        .column(C::SceneId)
        .from(history::Entity)
        .and_where(C::At.lt(cutoff))
        .limit(limit)
        .to_owned();
    Ok(history::Entity::delete_many()
        .filter(C::SceneId.in_subquery(ids))
        .exec(conn)
        .await?
        .rows_affected)
}

/// A login as `scanlogin logins` prints it (one JSON line each).
#[derive(Debug, Serialize)]
pub struct LoginLine {
    pub user_id: String,
    pub client_id: String,
    /// RFC 3339.
    pub at: String,
    pub ip: String,
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

impl From<history::Model> for LoginLine {
    fn from(m: history::Model) -> Self {
        let place = Location {
            country: m.country,
            region: m.region,
            city: m.city,
        };
        Self {
            user_id: m.user_id,
            client_id: m.client_id,
            at: rfc3339(m.at),
            ip: m.ip,
            user_agent: m.user_agent,
            location: (place != Location::default()).then_some(place),
        }
    }
}

/// The newest `limit` logins of `user_id`, newest first.
pub async fn recent(
    conn: &impl ConnectionTrait,
    user_id: &str,
    limit: u64,
) -> Result<Vec<history::Model>, DbErr> {
    history::Entity::find()
        .filter(C::UserId.eq(user_id))
        .order_by_desc(C::At)
        .order_by_desc(C::SceneId)
        .limit(limit)
        .all(conn)
        .await
}

/// Deletes every login of `user_id` (their account's deletion, in its
/// transaction); returns how many.
pub async fn delete_user(conn: &impl ConnectionTrait, user_id: &str) -> Result<u64, DbErr> {
    Ok(history::Entity::delete_many()
        .filter(C::UserId.eq(user_id))
        .exec(conn)
        .await?
        .rows_affected)
}
