//! WeChat as the hub meets it: several apps and their quotas, avatars,
//! WeChat's errors, phone numbers, and the built-in simulator's WeChat paths.

mod apps;
mod avatar;
mod errors;
mod phone;
mod simulator;
