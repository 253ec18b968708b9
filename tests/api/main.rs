//! Integration tests: each test runs a real hub on 127.0.0.1 port 0 with its
//! own database, secret key and fake WeChat (see `helpers/`).

mod account;
mod bad_input;
mod browser;
mod cluster;
mod concurrency;
mod dashboard;
mod data_path;
mod decrypt;
mod flow;
mod harden;
mod helpers;
mod hostile;
mod housekeeping;
mod login_history;
mod mp_login;
mod oidc;
mod openapi;
mod postgres;
mod process;
mod rotation;
mod simulator;
mod socket;
mod tickets;
mod webhooks;
mod wechat;
