//! scanlogin: a hub that lets websites offer "scan with WeChat to log in"
//! through a mini-program code, pushing the result to the browser over a
//! WebSocket. `main.rs` is thin; everything tests drive lives here.

pub mod account;
pub mod avatars;
pub mod clock;
pub mod config;
pub mod consents;
pub mod db;
pub mod error;
pub mod flight;
pub mod geoip;
pub mod http;
pub mod keys;
pub mod live;
pub mod locks;
pub mod login;
pub mod login_history;
pub mod origins;
pub mod push;
pub mod ratelimit;
pub mod scene;
pub mod sealed;
pub mod simulator;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tickets;
pub mod users;
pub mod webhooks;
pub mod wechat;

pub use config::Settings;
pub use startup::Application;
pub mod oidc;
