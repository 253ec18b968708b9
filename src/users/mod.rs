//! People and their WeChat identities (`users`, `identities`). An identity is
//! `(app_id, openid)`; a `unionid` joins identities of several apps into one
//! user.

use entity::{identities, users};
use sea_orm::sea_query::{Expr, ExprTrait, Func, OnConflict, Order, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QueryResult,
};
use serde::Serialize;

/// Who confirmed, as WeChat and the person said.
pub struct Person<'a> {
    pub app_id: &'a str,
    pub openid: &'a str,
    pub unionid: Option<&'a str>,
    pub nickname: Option<&'a str>,
    pub avatar_url: Option<&'a str>,
}

impl<'a> Person<'a> {
    /// A person known only by their WeChat identity, who said nothing about
    /// themselves (a code exchanged to find or record them).
    pub fn bare(app_id: &'a str, openid: &'a str, unionid: Option<&'a str>) -> Self {
        Self {
            app_id,
            openid,
            unionid,
            nickname: None,
            avatar_url: None,
        }
    }
}

/// A user as a site backend sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserProfile {
    /// The hub's user id, the same for one person across apps of one WeChat Open Platform account.
    pub id: String,
    /// WeChat's `unionid`, when WeChat gives one.
    #[schema(required = true)]
    pub unionid: Option<String>,
    #[schema(required = true)]
    pub nickname: Option<String>,
    #[schema(required = true)]
    pub avatar_url: Option<String>,
    /// One `(app_id, openid)` per mini-program the person has used.
    pub identities: Vec<IdentityView>,
    /// The phone number, only for clients with `phone = true` (see
    /// [`UserProfile::reveal_phone`]); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub phone_number: Option<String>,
    /// The phone number as stored (sealed); never serialised.
    #[serde(skip)]
    pub phone_sealed: Option<String>,
}

/// Where a user's phone number is sealed: the column and the row.
pub fn phone_context(user_id: &str) -> String {
    format!("users.phone_number:{user_id}")
}

impl UserProfile {
    /// Opens the sealed phone number into `phone_number` when `allowed`
    /// (the client has `phone = true`); otherwise leaves it absent.
    pub fn reveal_phone(&mut self, sealer: &crate::sealed::Sealer, allowed: bool) {
        self.phone_number = None;
        if !allowed {
            return;
        }
        if let Some(sealed) = &self.phone_sealed {
            match sealer.open_str(&phone_context(&self.id), sealed) {
                Ok(n) => self.phone_number = Some(n),
                Err(e) => tracing::warn!(error = %e, "a stored phone number does not open"),
            }
        }
    }
}

/// One `(app_id, openid)` of a user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub app_id: String,
    pub openid: String,
}

/// An identity's primary key.
const IDENTITY_KEY: [identities::Column; 2] =
    [identities::Column::AppId, identities::Column::Openid];

/// The identity row of `p`, pointing at `user_id`.
fn identity(p: &Person<'_>, user_id: &str, now: i64) -> identities::ActiveModel {
    identities::ActiveModel {
        app_id: Set(p.app_id.to_owned()),
        openid: Set(p.openid.to_owned()),
        user_id: Set(user_id.to_owned()),
        created_at: Set(now),
    }
}

/// Records users, always inside the caller's transaction (a confirm's), so
/// it holds no connection of its own; profiles are read joined onto other
/// queries ([`join_profile`]).
#[derive(Clone, Default)]
pub struct UserStore;

impl UserStore {
    /// A new user id, for a person who may turn out to be seen for the first time.
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// An expression for the user `p` already is: the user its unionid names,
    /// else its identity's user, else `new_id`. A confirm writes it into the
    /// scene row, so the lookup costs no statement of its own.
    pub fn existing_or(p: &Person<'_>, new_id: &str) -> Expr {
        let by_identity = Query::select()
            .column(identities::Column::UserId)
            .from(identities::Entity)
            .and_where(identities::Column::AppId.eq(p.app_id))
            .and_where(identities::Column::Openid.eq(p.openid))
            .to_owned();
        let mut candidates = Vec::with_capacity(3);
        if let Some(u) = p.unionid {
            let by_union = Query::select()
                .column(users::Column::Id)
                .from(users::Entity)
                .and_where(users::Column::Unionid.eq(u))
                .to_owned();
            candidates.push(Expr::SubQuery(None, Box::new(by_union.into())));
        }
        candidates.push(Expr::SubQuery(None, Box::new(by_identity.into())));
        candidates.push(Expr::val(new_id));
        Func::coalesce(candidates).into()
    }

    /// The user `p` already is, or `new_id`: [`Self::existing_or`] in a
    /// SELECT of its own, for logins that update no scene.
    pub async fn existing(
        &self,
        conn: &impl ConnectionTrait,
        p: &Person<'_>,
        new_id: &str,
    ) -> Result<String, DbErr> {
        let query = Query::select()
            .expr_as(
                Self::existing_or(p, new_id),
                sea_orm::sea_query::Alias::new("id"),
            )
            .to_owned();
        let row = conn
            .query_one_raw(conn.get_database_backend().build(&query))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("a SELECT without FROM gave no row".into()))?;
        row.try_get("", "id")
    }

    /// Records `p` as the user `found`, which [`Self::existing_or`]`(p,
    /// new_id)` gave in this transaction, and updates their profile; returns
    /// the user id, which differs from `found` only when a concurrent first
    /// login of the same person won. Runs on `conn` (the caller's transaction).
    pub async fn record(
        &self,
        conn: &impl ConnectionTrait,
        p: &Person<'_>,
        found: &str,
        new_id: &str,
        now: i64,
    ) -> Result<String, DbErr> {
        // The user is touched first: on PostgreSQL that UPDATE waits for a
        // concurrent deletion of the user (`users::delete`, which deletes the
        // user row first) and then finds no row; this login then makes a new
        // user, as it would have after the deletion, and links nothing to
        // the deleted one.
        if found != new_id && self.touch(conn, p, found, now).await? {
            if p.unionid.is_some() {
                // Joining by unionid links (or moves) the identity to the
                // unionid's user; without a unionid, `found` is the identity's.
                self.link(conn, p, found, now).await?;
            }
            return Ok(found.to_owned());
        }
        let row = users::ActiveModel {
            id: Set(new_id.to_owned()),
            unionid: Set(p.unionid.map(str::to_owned)),
            nickname: Set(p.nickname.map(str::to_owned)),
            avatar_url: Set(p.avatar_url.map(str::to_owned)),
            phone_number: Set(None),
            avatar_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        if p.unionid.is_some() {
            // A concurrent first login (PostgreSQL runs them side by side) may
            // have created the unionid's user meanwhile: the unique unionid
            // picks one user for both, and this login updates its profile.
            let mut on_conflict = OnConflict::column(users::Column::Unionid);
            on_conflict.value(users::Column::UpdatedAt, now);
            if let Some(n) = p.nickname {
                on_conflict.value(users::Column::Nickname, n);
            }
            if let Some(a) = p.avatar_url {
                on_conflict.value(users::Column::AvatarUrl, a);
            }
            let user = users::Entity::insert(row)
                .on_conflict(on_conflict)
                .exec_with_returning(conn)
                .await?;
            self.link(conn, p, &user.id, now).await?;
            return Ok(user.id);
        }
        users::Entity::insert(row)
            .exec_without_returning(conn)
            .await?;
        // Two first logins of a person without a unionid may race too: the
        // identity's primary key decides, and the loser's new user goes.
        let keep_owner = OnConflict::columns(IDENTITY_KEY)
            .value(
                identities::Column::UserId,
                Expr::col((identities::Entity, identities::Column::UserId)),
            )
            .to_owned();
        let owner = identities::Entity::insert(identity(p, new_id, now))
            .on_conflict(keep_owner)
            .exec_with_returning(conn)
            .await?
            .user_id;
        if owner != new_id {
            users::Entity::delete_by_id(new_id.to_owned())
                .exec(conn)
                .await?;
            self.touch(conn, p, &owner, now).await?;
        }
        Ok(owner)
    }

    /// Points the identity `(app_id, openid)` of `p` at `user_id`.
    async fn link(
        &self,
        conn: &impl ConnectionTrait,
        p: &Person<'_>,
        user_id: &str,
        now: i64,
    ) -> Result<(), DbErr> {
        identities::Entity::insert(identity(p, user_id, now))
            .on_conflict(
                OnConflict::columns(IDENTITY_KEY)
                    .update_column(identities::Column::UserId)
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
        Ok(())
    }

    /// Keeps `sealed` (sealed with [`phone_context`] of `user_id`) as the
    /// user's phone number, in the caller's transaction.
    pub async fn set_phone(
        &self,
        conn: &impl ConnectionTrait,
        user_id: &str,
        sealed: &str,
    ) -> Result<(), DbErr> {
        users::Entity::update_many()
            .col_expr(users::Column::PhoneNumber, sealed.into())
            .filter(users::Column::Id.eq(user_id))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Records which uploaded avatar (`avatars.id`) the user shows, or none
    /// when their avatar is elsewhere; housekeeping keeps only named avatars.
    pub async fn set_avatar(
        &self,
        conn: &impl ConnectionTrait,
        user_id: &str,
        avatar_id: Option<&str>,
    ) -> Result<(), DbErr> {
        users::Entity::update_many()
            .col_expr(users::Column::AvatarId, avatar_id.map(str::to_owned).into())
            .filter(users::Column::Id.eq(user_id))
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Updates the profile of an existing user: what `p` says, and its
    /// unionid when the user had none; `false` when the user is gone.
    async fn touch(
        &self,
        conn: &impl ConnectionTrait,
        p: &Person<'_>,
        user_id: &str,
        now: i64,
    ) -> Result<bool, DbErr> {
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::UpdatedAt, now.into())
            .filter(users::Column::Id.eq(user_id));
        if let Some(u) = p.unionid {
            update = update.col_expr(
                users::Column::Unionid,
                Expr::col(users::Column::Unionid).if_null(u),
            );
        }
        if let Some(n) = p.nickname {
            update = update.col_expr(users::Column::Nickname, n.into());
        }
        if let Some(a) = p.avatar_url {
            update = update.col_expr(users::Column::AvatarUrl, a.into());
        }
        Ok(update.exec(conn).await?.rows_affected > 0)
    }
}

/// Adds to `query` the profile of the user `user_id` names (an expression
/// over the query's own tables): the user's columns and, one row each, their
/// identities, oldest first. [`read_profile`] reads them back by name, so
/// the query's own columns must not be named like them.
pub fn join_profile(query: &mut SelectStatement, user_id: Expr) {
    use identities::Column as I;
    use users::Column as U;
    query
        .columns([
            (users::Entity, U::Id),
            (users::Entity, U::Unionid),
            (users::Entity, U::Nickname),
            (users::Entity, U::AvatarUrl),
        ])
        .columns([
            (identities::Entity, I::AppId),
            (identities::Entity, I::Openid),
        ])
        .column((users::Entity, U::PhoneNumber))
        .left_join(users::Entity, Expr::col((users::Entity, U::Id)).eq(user_id))
        .left_join(
            identities::Entity,
            Expr::col((identities::Entity, I::UserId)).equals((users::Entity, U::Id)),
        )
        .order_by((identities::Entity, I::CreatedAt), Order::Asc);
}

/// The profile in the rows of a query that [`join_profile`] extended, read
/// by column name; `None` when the user is missing.
pub fn read_profile(rows: &[QueryResult]) -> Result<Option<UserProfile>, DbErr> {
    let Some(head) = rows.first() else {
        return Ok(None);
    };
    let Some(id) = head.try_get::<Option<String>>("", "id")? else {
        return Ok(None);
    };
    let mut profile = UserProfile {
        id,
        unionid: head.try_get("", "unionid")?,
        nickname: head.try_get("", "nickname")?,
        avatar_url: head.try_get("", "avatar_url")?,
        identities: Vec::with_capacity(rows.len()),
        phone_number: None,
        phone_sealed: head.try_get("", "phone_number")?,
    };
    for row in rows {
        let app_id: Option<String> = row.try_get("", "app_id")?;
        let openid: Option<String> = row.try_get("", "openid")?;
        if let (Some(app_id), Some(openid)) = (app_id, openid) {
            profile.identities.push(IdentityView { app_id, openid });
        }
    }
    Ok(Some(profile))
}

/// A user as the person's account shows it.
pub struct StoredUser {
    /// Id, unionid, nickname, avatar and identities (the phone number stays sealed).
    pub profile: UserProfile,
    /// When the hub first saw the person (ms).
    pub created_at: i64,
}

/// The user `user_id` with their identities, oldest first; `None` when unknown.
pub async fn find(conn: &impl ConnectionTrait, user_id: &str) -> Result<Option<StoredUser>, DbErr> {
    let Some(user) = users::Entity::find_by_id(user_id.to_owned())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let identities = identities::Entity::find()
        .filter(identities::Column::UserId.eq(user_id))
        .order_by_asc(identities::Column::CreatedAt)
        .all(conn)
        .await?
        .into_iter()
        .map(|i| IdentityView {
            app_id: i.app_id,
            openid: i.openid,
        })
        .collect();
    Ok(Some(StoredUser {
        profile: UserProfile {
            id: user.id,
            unionid: user.unionid,
            nickname: user.nickname,
            avatar_url: user.avatar_url,
            identities,
            phone_number: None,
            phone_sealed: user.phone_number,
        },
        created_at: user.created_at,
    }))
}

/// What deleting a user removed that other rooms need to know.
pub struct DeletedUser {
    /// The uploaded avatar the user showed, which the avatars room deletes.
    pub avatar_id: Option<String>,
}

/// Deletes the user `user_id` (profile, phone number) and their identities,
/// in the caller's transaction; `None` when there was no such user. The
/// user row goes first: a concurrent login of the same person waits for it
/// and then makes a new user (see [`UserStore::record`]).
pub async fn delete(
    conn: &impl ConnectionTrait,
    user_id: &str,
) -> Result<Option<DeletedUser>, DbErr> {
    let gone = users::Entity::delete_many()
        .filter(users::Column::Id.eq(user_id))
        .exec_with_returning(conn)
        .await?;
    let Some(user) = gone.into_iter().next() else {
        return Ok(None);
    };
    identities::Entity::delete_many()
        .filter(identities::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(Some(DeletedUser {
        avatar_id: user.avatar_id,
    }))
}
