//! `GET /openapi.json`: the OpenAPI 3.1 document of the hub's JSON API,
//! generated from the handlers (`#[utoipa::path]` next to each) and their own
//! request and answer types, so it cannot drift from the code. Adding an
//! endpoint is one line in `paths(...)` below.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::http::error::Problem;
use crate::state::AppState;

/// The media type of every error answer.
const PROBLEM_JSON: &str = "application/problem+json";

/// The document, as generated from the code.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "scanlogin",
        description = "Scan-with-WeChat login hub. The contract is docs/api.md in the \
            repository; this document gives the field-level detail.\n\n\
            Authentication: the browser's `browser_token` (from `POST /api/v1/scenes`) as \
            `Authorization: Bearer` on `events` and in the WebSocket's first frame; the site \
            backend's HTTP Basic `client_id:client_secret` on `tickets/redeem`; the \
            mini-program's `mp_token` (from `mp/scan`) as a field of the JSON body of \
            `mp/confirm` and `mp/cancel` (or a fresh `wx.login` `code` instead), and as \
            `Authorization: Bearer` on `mp/avatar`.\n\n\
            Every error is an RFC 9457 problem document (`application/problem+json`, schema \
            `Problem`) with a stable `code`; 429 and 503 carry `Retry-After`.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        super::browser::create_scene,
        super::browser::qrcode,
        super::browser::events,
        super::socket::plain_request,
        super::miniprogram::scan,
        super::miniprogram::confirm,
        super::miniprogram::cancel,
        super::miniprogram::login,
        super::account::show,
        super::account::delete,
        super::avatars::upload,
        super::avatars::serve,
        super::site::redeem,
        super::ops::healthz,
        super::ops::readyz,
        document,
        super::oidc::discovery,
        super::oidc::complete,
        super::oidc::token,
        super::oidc::userinfo,
        super::oidc::userinfo_post,
        super::oidc::jwks,
    ),
    components(schemas(Problem, super::events::BrowserEvent, super::socket::AuthFrame)),
    modifiers(&SecuritySchemes, &ProblemAnswers),
    tags(
        (name = "browser", description = "Called by the widget in the browser (CORS per client)"),
        (name = "mini-program", description = "Called by the mini-program with wx.request"),
        (name = "site", description = "Called by the site's backend"),
        (name = "operations", description = "Liveness, readiness and this document"),
        (name = "openid-connect", description = "The OpenID Connect provider (authorization \
            code flow with PKCE); `GET /oauth2/authorize` is an HTML page and redirect, not JSON"),
    )
)]
pub struct ApiDoc;

/// The auth schemes the operations name in `security`.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.description = Some(
            "The scene's `browser_token` from `POST /api/v1/scenes`: \
             `Authorization: Bearer <browser_token>`."
                .into(),
        );
        components.add_security_scheme("browser_token", SecurityScheme::Http(bearer));
        let mut basic = Http::new(HttpAuthScheme::Basic);
        basic.description = Some(
            "The site backend's client credentials (RFC 7617): \
             `client_id:client_secret`."
                .into(),
        );
        components.add_security_scheme("client_basic", SecurityScheme::Http(basic));
        let mut mp = Http::new(HttpAuthScheme::Bearer);
        mp.description = Some(
            "The mini-program's `mp_token` from `POST /api/v1/mp/scan`, as \
             `Authorization: Bearer <mp_token>` (avatar upload only; confirm and cancel take \
             it in the body)."
                .into(),
        );
        components.add_security_scheme("mp_token", SecurityScheme::Http(mp));
        let mut access = Http::new(HttpAuthScheme::Bearer);
        access.description = Some(
            "An OpenID Connect access token from `POST /oauth2/token`: \
             `Authorization: Bearer <access_token>`."
                .into(),
        );
        components.add_security_scheme("access_token", SecurityScheme::Http(access));
    }
}

/// Every 4xx/5xx answer of every operation that does not name its own body
/// (the OAuth endpoints answer RFC 6749 errors) is a [`Problem`]; 429 and
/// 503 say when to retry.
struct ProblemAnswers;

impl Modify for ProblemAnswers {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let problem = RefOr::Ref(Ref::from_schema_name(Problem::name()));
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ];
            for op in operations.into_iter().flatten() {
                for (status, answer) in op.responses.responses.iter_mut() {
                    let code: u16 = status.parse().unwrap_or(0);
                    let RefOr::T(answer) = answer else { continue };
                    if code < 400 {
                        continue;
                    }
                    if answer.content.is_empty() {
                        answer.content.insert(
                            PROBLEM_JSON.to_owned(),
                            RefOr::T(ContentBuilder::new().schema(Some(problem.clone())).build()),
                        );
                    }
                    if code == 429 || code == 503 {
                        answer.headers.insert(
                            "Retry-After".to_owned(),
                            RefOr::T(
                                HeaderBuilder::new()
                                    .schema(Some(u64::schema()))
                                    .description(Some("Seconds to wait before retrying"))
                                    .build(),
                            ),
                        );
                    }
                }
            }
        }
    }
}

static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(ApiDoc::openapi);

/// `GET /openapi.json`: the document, with the configured public URL as
/// its server, readable from any origin.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document (OpenAPI 3.1)",
    responses(
        (status = 200, description = "The OpenAPI document", body = serde_json::Value),
        (status = 429, description = "`rate_limited` (per client IP)"),
    )
)]
pub async fn document(state: web::Data<AppState>) -> HttpResponse {
    let mut doc = DOCUMENT.clone();
    let settings = state.settings.load();
    let base = settings.server.public_url.as_str();
    doc.servers = Some(vec![Server::new(base.trim_end_matches('/'))]);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        // Public and without credentials: any OpenAPI viewer may load it.
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(doc)
}
