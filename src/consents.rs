//! Which clients a person shared their phone number with (SPEC v3 "Consent
//! and binding"): the only code touching `phone_consents`. A client with
//! `phone = true` gets the number only when the person shared it with that
//! client, in this login or an earlier one; one row per (user, client).

use entity::phone_consents::{self as consents, Column as C};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

/// Records that `user_id` shared their number with `client_id` at `now`
/// (in the caller's transaction; again is harmless).
pub async fn record(
    conn: &impl ConnectionTrait,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<(), DbErr> {
    let row = consents::ActiveModel {
        user_id: Set(user_id.to_owned()),
        client_id: Set(client_id.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    };
    crate::db::insert_or_touch(conn, row, [C::UserId, C::ClientId], C::UpdatedAt).await
}

/// Whether `user_id` ever shared their number with `client_id`.
pub async fn shared(
    conn: &impl ConnectionTrait,
    user_id: &str,
    client_id: &str,
) -> Result<bool, DbErr> {
    Ok(consents::Entity::find()
        .filter(C::UserId.eq(user_id))
        .filter(C::ClientId.eq(client_id))
        .one(conn)
        .await?
        .is_some())
}

/// The clients `user_id` shared their number with.
pub async fn clients_of(conn: &impl ConnectionTrait, user_id: &str) -> Result<Vec<String>, DbErr> {
    Ok(consents::Entity::find()
        .filter(C::UserId.eq(user_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|m| m.client_id)
        .collect())
}

/// Deletes every consent of `user_id` (their account's deletion, in its
/// transaction).
pub async fn delete_user(conn: &impl ConnectionTrait, user_id: &str) -> Result<u64, DbErr> {
    Ok(consents::Entity::delete_many()
        .filter(C::UserId.eq(user_id))
        .exec(conn)
        .await?
        .rows_affected)
}
