//! Integration tests: each test runs a real hub on 127.0.0.1 port 0 with its
//! own database, secret key and fake WeChat (see `helpers/`).

mod account;
mod bad_input;
mod browser;
mod cluster;
mod cluster_measure;
mod concurrency;
mod dashboard;
mod data_path;
mod decrypt;
mod fake_wechat;
mod flow;
mod harden;
mod helpers;
mod hostile;
mod hostile_ws;
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
mod socket_silence;
mod tcp_proxy;
mod tickets;
mod webhooks;
mod wechat_apps;
mod wechat_avatar;
mod wechat_errors;
mod wechat_phone;
mod wechat_simulator;
