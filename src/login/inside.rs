//! Logging in inside the mini-program itself (`POST /api/v1/mp/login`): the
//! code of `wx.login` is exchanged like a scan's, and the person is recorded
//! exactly as a website login records them, so both give the same `user.id`.

use tracing::info;

use super::LoginError;
use super::phone::PhoneFlow;
use crate::clock::now_ms;
use crate::users::{Person, UserStore};

/// What a code exchanged for a mini-program login is bound to, in place of a
/// scene: such a code cannot also scan a scene, nor a scene's code log in.
const BOUND_TO: &str = "mp-login";

/// A person logged in inside the mini-program.
#[derive(Debug, Clone)]
pub struct InsideLogin {
    pub user_id: String,
    pub app_id: String,
    pub unionid: Option<String>,
}

impl PhoneFlow {
    /// Exchanges `code` (once; a retry within its 5 minutes gets the same
    /// answer) and records the person as a website login would.
    pub async fn inside_login(
        &self,
        code: &str,
        app_id: Option<&str>,
    ) -> Result<InsideLogin, LoginError> {
        let (_held, ex, note) = self.exchange_for(code, app_id, BOUND_TO).await?;
        let (app_id, openid, unionid) = (ex.app_id.clone(), ex.openid.clone(), ex.unionid.clone());
        let user_id = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let person = Person::bare(&app_id, &openid, unionid.as_deref());
                    let new_user = UserStore::new_id();
                    let users = UserStore;
                    let found = users.existing(tx, &person, &new_user).await?;
                    let user_id = users
                        .record(tx, &person, &found, &new_user, now_ms())
                        .await?;
                    note.write(tx, None).await?;
                    Ok::<_, sea_orm::DbErr>(user_id)
                })
            })
            .await?;
        info!(user_id, app_id = %ex.app_id, "logged in inside the mini-program");
        Ok(InsideLogin {
            user_id,
            app_id: ex.app_id,
            unionid: ex.unionid,
        })
    }
}
