//! The one upsert the stores share: a row per key, inserted the first time
//! and only touched after.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait};

type Column<A> = <<A as ActiveModelTrait>::Entity as EntityTrait>::Column;

/// Inserts `row`, or, where a row with the same `key` is there already,
/// sets that row's `touched` column to `row`'s value and leaves the rest:
/// one statement, on SQLite as on PostgreSQL.
pub async fn insert_or_touch<A, const N: usize>(
    conn: &impl ConnectionTrait,
    row: A,
    key: [Column<A>; N],
    touched: Column<A>,
) -> Result<(), DbErr>
where
    A: ActiveModelTrait,
{
    A::Entity::insert(row)
        .on_conflict(OnConflict::columns(key).update_column(touched).to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
