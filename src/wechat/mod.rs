//! Everything that speaks WeChat: the client, its token cache, which app
//! shows a code, and user-data crypto. (The built-in simulator, which
//! plays WeChat's side, is `crate::simulator`.)

pub mod apps;
pub mod client;
pub mod crypto;
pub mod tokens;

pub use client::{CodeImage, TokenError, WechatClient, WechatError, WxSession};
