//! Old rows do not pile up: scenes, code images and tickets past the
//! retention, and code exchanges past their 5 minutes, are deleted.

use std::time::Duration;

use entity::{code_exchanges, scene_codes, scenes, tickets};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{ok_json, spawn_app_with};

async fn rows(db: &DatabaseConnection, scene_id: &str) -> [u64; 3] {
    [
        scenes::Entity::find()
            .filter(scenes::Column::Id.eq(scene_id))
            .count(db)
            .await
            .expect("count"),
        scene_codes::Entity::find()
            .filter(scene_codes::Column::SceneId.eq(scene_id))
            .count(db)
            .await
            .expect("count"),
        tickets::Entity::find()
            .filter(tickets::Column::SceneId.eq(scene_id))
            .count(db)
            .await
            .expect("count"),
    ]
}

#[tokio::test]
async fn old_rows_are_deleted_and_fresh_ones_kept() {
    let app = spawn_app_with(|cfg| cfg.housekeeping_secs = 1).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let scene = app.create_scene().await;
        assert_eq!(app.qrcode(&scene.id).await.status(), 200);
        let code = app.login_code("o_old");
        ok_json(
            app.confirm(&json!({"scene_id": scene.id, "code": code}))
                .await,
        )
        .await;
        ids.push(scene.id);
    }
    let (old, fresh) = (&ids[0], &ids[1]);
    let db = app.db().await;
    assert_eq!(rows(&db, old).await, [1, 1, 1]);
    let two_hours_ago = chrono::Utc::now().timestamp_millis() - 2 * 3600 * 1000;
    scenes::Entity::update_many()
        .col_expr(scenes::Column::CreatedAt, Expr::value(two_hours_ago))
        .filter(scenes::Column::Id.eq(old.as_str()))
        .exec(&db)
        .await
        .expect("age scene");
    scene_codes::Entity::update_many()
        .col_expr(scene_codes::Column::CreatedAt, Expr::value(two_hours_ago))
        .filter(scene_codes::Column::SceneId.eq(old.as_str()))
        .exec(&db)
        .await
        .expect("age image");
    tickets::Entity::update_many()
        .col_expr(tickets::Column::IssuedAt, Expr::value(two_hours_ago))
        .filter(tickets::Column::SceneId.eq(old.as_str()))
        .exec(&db)
        .await
        .expect("age ticket");
    let exchanges = code_exchanges::Entity::find()
        .count(&db)
        .await
        .expect("count");
    assert_eq!(exchanges, 2);
    code_exchanges::Entity::update_many()
        .col_expr(
            code_exchanges::Column::ExpiresAt,
            Expr::value(two_hours_ago),
        )
        .exec(&db)
        .await
        .expect("age exchanges");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    loop {
        let gone = rows(&db, old).await == [0, 0, 0]
            && code_exchanges::Entity::find()
                .count(&db)
                .await
                .expect("count")
                == 0;
        if gone {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "old rows still there: {:?}",
            rows(&db, old).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rows(&db, fresh).await, [1, 1, 1]);
    let _ = db.close().await;
}
