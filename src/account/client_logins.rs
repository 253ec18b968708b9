//! Which clients each person logged in to (`client_logins`), first and
//! last: the only code touching that table. One upsert per confirm, in its
//! transaction; kept as long as the user, whatever the login history keeps.

use entity::client_logins::{self as logins, Column as C};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

/// Records that `user_id` logged in to `client_id` at `now` (in the
/// confirm's transaction).
pub async fn record(
    conn: &impl ConnectionTrait,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<(), DbErr> {
    let row = logins::ActiveModel {
        user_id: Set(user_id.to_owned()),
        client_id: Set(client_id.to_owned()),
        first_login_at: Set(now),
        last_login_at: Set(now),
    };
    crate::db::insert_or_touch(conn, row, [C::UserId, C::ClientId], C::LastLoginAt).await
}

/// The clients `user_id` logged in to, first logged in to first.
pub async fn of_user(
    conn: &impl ConnectionTrait,
    user_id: &str,
) -> Result<Vec<logins::Model>, DbErr> {
    logins::Entity::find()
        .filter(C::UserId.eq(user_id))
        .order_by_asc(C::FirstLoginAt)
        .order_by_asc(C::ClientId)
        .all(conn)
        .await
}

/// Deletes the rows of `user_id`, returning the clients they named (their
/// account's deletion, in its transaction).
pub async fn delete_user(conn: &impl ConnectionTrait, user_id: &str) -> Result<Vec<String>, DbErr> {
    let mut gone: Vec<String> = logins::Entity::delete_many()
        .filter(C::UserId.eq(user_id))
        .exec_with_returning(conn)
        .await?
        .into_iter()
        .map(|m| m.client_id)
        .collect();
    gone.sort();
    Ok(gone)
}
