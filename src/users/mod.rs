//! People and their WeChat identities (`users`, `identities`). An identity is
//! `(app_id, openid)`; a `unionid` joins identities of several apps into one
//! user.

use entity::{identities, users};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder,
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

/// A user as a site backend sees it.
#[derive(Debug, Clone, Serialize)]
pub struct UserProfile {
    pub id: String,
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
    pub identities: Vec<IdentityView>,
}

/// One `(app_id, openid)` of a user.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityView {
    pub app_id: String,
    pub openid: String,
}

/// Reads and records users.
#[derive(Clone)]
pub struct UserStore {
    db: DatabaseConnection,
}

impl UserStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Finds or creates the user behind `p` and updates their profile;
    /// returns the user id. Runs on `conn` (the caller's transaction).
    pub async fn record(
        &self,
        conn: &impl ConnectionTrait,
        p: &Person<'_>,
        now: i64,
    ) -> Result<String, DbErr> {
        let by_identity =
            identities::Entity::find_by_id((p.app_id.to_owned(), p.openid.to_owned()))
                .one(conn)
                .await?;
        let by_union = match p.unionid {
            Some(u) => {
                users::Entity::find()
                    .filter(users::Column::Unionid.eq(u))
                    .one(conn)
                    .await?
            }
            None => None,
        };
        // `fresh`: a user row this call created for a person with no unionid.
        // Two first logins of such a person may race (PostgreSQL runs them
        // side by side); the identity's primary key decides the winner.
        let (mut user_id, fresh) = match (by_identity, by_union) {
            (_, Some(u)) => (u.id, false),
            (Some(i), None) => (i.user_id, false),
            (None, None) => {
                let id = uuid::Uuid::new_v4().to_string();
                let row = users::ActiveModel {
                    id: Set(id.clone()),
                    unionid: Set(p.unionid.map(str::to_owned)),
                    nickname: Set(None),
                    avatar_url: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                };
                // With a unionid, a concurrent first login may have won: the
                // unique unionid picks one user for both.
                users::Entity::insert(row)
                    .on_conflict(
                        OnConflict::column(users::Column::Unionid)
                            .do_nothing()
                            .to_owned(),
                    )
                    .exec_without_returning(conn)
                    .await?;
                match p.unionid {
                    Some(u) => {
                        let winner = users::Entity::find()
                            .filter(users::Column::Unionid.eq(u))
                            .one(conn)
                            .await?
                            .ok_or_else(|| DbErr::RecordNotFound("user by unionid".into()))?;
                        (winner.id, false)
                    }
                    None => (id, true),
                }
            }
        };
        let identity = identities::ActiveModel {
            app_id: Set(p.app_id.to_owned()),
            openid: Set(p.openid.to_owned()),
            user_id: Set(user_id.clone()),
            created_at: Set(now),
        };
        let key = [identities::Column::AppId, identities::Column::Openid];
        let on_conflict = if fresh {
            OnConflict::columns(key).do_nothing().to_owned()
        } else {
            // Joining by unionid moves the identity to the unionid's user.
            OnConflict::columns(key)
                .update_column(identities::Column::UserId)
                .to_owned()
        };
        identities::Entity::insert(identity)
            .on_conflict(on_conflict)
            .exec_without_returning(conn)
            .await?;
        if fresh {
            let owner = identities::Entity::find_by_id((p.app_id.to_owned(), p.openid.to_owned()))
                .one(conn)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("identity".into()))?;
            if owner.user_id != user_id {
                users::Entity::delete_by_id(user_id.clone())
                    .exec(conn)
                    .await?;
                user_id = owner.user_id;
            }
        }
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::UpdatedAt, now.into())
            .filter(users::Column::Id.eq(user_id.as_str()));
        if let Some(u) = p.unionid {
            update = update.col_expr(
                users::Column::Unionid,
                sea_orm::sea_query::ExprTrait::if_null(
                    sea_orm::sea_query::Expr::col(users::Column::Unionid),
                    u,
                ),
            );
        }
        if let Some(n) = p.nickname {
            update = update.col_expr(users::Column::Nickname, n.into());
        }
        if let Some(a) = p.avatar_url {
            update = update.col_expr(users::Column::AvatarUrl, a.into());
        }
        update.exec(conn).await?;
        // The person's id is found again from the identity, which is the truth
        // even when a concurrent login linked it first.
        identities::Entity::find_by_id((p.app_id.to_owned(), p.openid.to_owned()))
            .one(conn)
            .await?
            .map(|i| i.user_id)
            .ok_or_else(|| DbErr::RecordNotFound("identity".into()))
    }

    /// The user with their identities.
    pub async fn profile(&self, user_id: &str) -> Result<Option<UserProfile>, DbErr> {
        let Some(u) = users::Entity::find_by_id(user_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let ids = identities::Entity::find()
            .filter(identities::Column::UserId.eq(user_id))
            .order_by_asc(identities::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(Some(UserProfile {
            id: u.id,
            unionid: u.unionid,
            nickname: u.nickname,
            avatar_url: u.avatar_url,
            identities: ids
                .into_iter()
                .map(|i| IdentityView {
                    app_id: i.app_id,
                    openid: i.openid,
                })
                .collect(),
        }))
    }
}
