//! Complete OpenID Connect logins, as a stock relying party and a browser
//! do them over plain HTTP: `GET /oauth2/authorize` (code, `openid
//! profile`, state, nonce, PKCE S256) -> the hub's page: create scene (with
//! the hub's origin), the code image, socket -> the phone scans and confirms
//! (as in the full flow) -> `confirmed` with the ticket -> the page posts it
//! to `/oauth2/authorize/complete` -> the redirect with `code` ->
//! `POST /oauth2/token` (`client_secret_basic`, `code_verifier`) ->
//! `GET /oauth2/userinfo`. Hub CPU per OIDC login. The page's script
//! (`/scanlogin.js`) is taken as cached by the browser and not fetched.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;

use super::workers::{Laps, drive, measured};
use super::{Ctx, STEP_TIMEOUT};
use crate::browser;
use crate::cli::Args;
use crate::rp::{Request, Rp};

/// Flows run before measuring (signing key, the grant tables).
const WARM_UP: usize = 30;

/// The steps of an OIDC login, in order, as named in the report.
const STEPS: [&str; 8] = [
    "authorize page",
    "create scene+code image",
    "socket open+auth+waiting",
    "scan+scanned pushed",
    "confirm+confirmed pushed",
    "complete (code)",
    "token",
    "userinfo",
];

/// The measured OIDC logins (`--oidc-logins`); the report's `oidc` part and
/// whether any failed.
pub async fn run(ctx: &Ctx, args: &Args) -> anyhow::Result<(Value, bool)> {
    let rp = Rp::new(
        ctx.hub.clone(),
        &args.oidc_client_id,
        &args.oidc_client_secret,
        &args.oidc_redirect_uri,
    )?;
    let count = args.oidc_logins;
    let warm = WARM_UP.min(count);
    let codes = ctx.codes.get("bench-ow", warm).await?;
    let done = drive(warm, args.workers.min(warm), STEPS.len(), "oidc login", {
        let (rp, codes) = (rp.clone(), Arc::new(codes));
        move |i| {
            let (rp, codes) = (rp.clone(), codes.clone());
            async move { oidc_login(&rp, &codes[i]).await }
        }
    })
    .await;
    ensure!(
        done.errors.count() == 0,
        "OIDC logins: warm-up failed: {:?}",
        done.errors.samples()
    );
    eprintln!("OIDC logins: fetching {count} codes");
    let codes = Arc::new(ctx.codes.get("bench-o", count).await?);
    eprintln!("OIDC logins: {count} flows with {} workers", args.workers);
    measured(ctx, count, args.workers, &STEPS, "oidc login", move |i| {
        let (rp, codes) = (rp.clone(), codes.clone());
        async move { oidc_login(&rp, &codes[i]).await }
    })
    .await
}

/// One OIDC login with the `wx.login` code `code`; times each step.
async fn oidc_login(rp: &Rp, code: &str) -> anyhow::Result<Laps> {
    let hub = rp.hub();
    let origin = hub.origin().to_owned();
    let request = Request::new();
    let mut laps = Laps::start();
    let handle = rp.authorize(&request).await?;
    laps.lap();
    let scene = hub
        .create_scene_for(&rp.client_id, Some(&origin), Some(&handle))
        .await?;
    hub.code_image(&scene).await?;
    laps.lap();
    let mut ws = browser::open_from(&scene, Some(&origin)).await?;
    laps.lap();
    let mp_token = hub.scan(&scene.scene_id, code).await?;
    browser::expect(&mut ws, "scanned", STEP_TIMEOUT).await?;
    laps.lap();
    hub.confirm_scanned(&scene.scene_id, &mp_token, "bench")
        .await?;
    let event = browser::expect(&mut ws, "confirmed", STEP_TIMEOUT).await?;
    laps.lap();
    let ticket = event["ticket"]
        .as_str()
        .context("confirmed without a ticket")?;
    let code = rp.complete(&handle, ticket, &request).await?;
    laps.lap();
    let tokens = rp.token(&code, &request).await?;
    laps.lap();
    rp.userinfo(&tokens).await?;
    laps.lap();
    tokio::spawn(browser::drain(ws, Duration::from_secs(2)));
    Ok(laps)
}
