//! sea-orm entities of scanlogin: the shape of each table, nothing else.
//! Timestamps are milliseconds since the Unix epoch.

pub mod avatars;
pub mod client_logins;
pub mod code_exchanges;
pub mod identities;
pub mod login_history;
pub mod oidc_access_tokens;
pub mod oidc_grants;
pub mod oidc_keys;
pub mod phone_consents;
pub mod scene_codes;
pub mod scenes;
pub mod tickets;
pub mod users;
pub mod webhook_events;
pub mod wechat_tokens;
