//! Demo only: a route that stands for a site's backend, so the demo page can
//! show what redeeming a ticket returns. It exists only while a client named
//! `demo` is configured, and redeems only that client's tickets.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::http::error::ApiError;
use crate::live::ClientRef;
use crate::state::AppState;

pub use crate::config::DEMO_CLIENT;

#[derive(Deserialize)]
pub struct DemoRedeem {
    ticket: String,
}

/// `POST /demo/redeem`: redeems a `demo` ticket as the demo site's backend would.
pub async fn redeem(
    state: web::Data<AppState>,
    body: web::Json<DemoRedeem>,
) -> Result<HttpResponse, ApiError> {
    let client =
        ClientRef::find(state.settings.get(), DEMO_CLIENT).ok_or_else(ApiError::not_found)?;
    let answer = state.redeemer.redeem(&client, &body.ticket).await?;
    Ok(HttpResponse::Ok().json(answer))
}
