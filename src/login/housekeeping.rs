//! What the hub does on its own: expiring overdue scenes (and telling their
//! browsers), deleting what is past its retention, and saying whether the
//! database takes writes.

use sea_orm::DbErr;
use tracing::info;

use super::{FlowEvent, Login};
use crate::clock::now_ms;
use crate::scene::{SceneView, State};

impl Login {
    /// Marks overdue scenes expired and tells their browsers; returns how many.
    pub async fn expire_overdue(&self) -> Result<usize, DbErr> {
        let mut total = 0;
        for _ in 0..20 {
            let ids = self.scenes.expire_overdue(now_ms(), 500).await?;
            let n = ids.len();
            for id in ids {
                info!(scene_id = %id, "scene expired");
                self.report(FlowEvent::Ended(State::Expired));
                self.publish(SceneView::plain(id, State::Expired)).await;
            }
            total += n;
            if n < 500 {
                break;
            }
        }
        Ok(total)
    }

    /// Deletes scenes, code images and tickets older than `retention_ms`,
    /// code exchanges past their 5 minutes, avatars no user shows once
    /// their scene is done with them (within an hour), and logins older than
    /// `housekeeping.login_history_days` (all of them at 0), in batches;
    /// returns rows deleted.
    pub async fn purge(&self, retention_ms: i64, batch: u64) -> Result<u64, DbErr> {
        let now = now_ms();
        let cutoff = now - retention_ms;
        let logins_cutoff =
            now.saturating_sub(self.settings.load().housekeeping.login_history_ms());
        let mut total = 0;
        for _ in 0..100 {
            let n = self.scenes.purge_before(cutoff, batch).await?
                + self.code_images.purge_before(cutoff, batch).await?
                + self.tickets.purge_before(cutoff, batch).await?
                + self.exchanges.purge_before(now, batch).await?
                + self.avatars.purge_unreferenced(now, batch).await?
                + crate::login_history::purge_before(self.db.write(), logins_cutoff, batch).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Whether the database answers reads and takes writes.
    pub async fn ready(&self) -> Result<(), DbErr> {
        self.db.check_ready().await
    }
}
