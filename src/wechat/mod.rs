//! Everything that speaks WeChat: the client, its token cache, remembered
//! code exchanges, user-data crypto, and the built-in simulator.

pub mod apps;
pub mod client;
pub mod crypto;
pub mod simulator;
pub mod tokens;

pub use client::{CodeImage, WechatClient, WechatError, WxSession};
