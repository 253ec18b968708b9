//! `GET /openapi.json`: the OpenAPI 3.1 document of the hub's JSON API. Each
//! route of that API is an [`Endpoint`] of the route table
//! (`http::routes::api`), made from its handler and the handler's
//! `#[utoipa::path]`: that one declaration gives the path and methods the
//! table mounts and the operation shown here, so the two cannot drift.
//! Adding an endpoint is one line in that list.

use actix_web::http::{Method, header};
use actix_web::{FromRequest, Handler, HttpResponse, Resource, Responder, Route, web};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_actix_web::OpenApiFactory;

use crate::http::error::Problem;
use crate::state::AppState;

/// The media type of every error answer.
const PROBLEM_JSON: &str = "application/problem+json";

/// What the document says besides its paths: the API as a whole, the
/// schemas no operation names, the tags and the auth schemes.
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
    components(schemas(Problem, super::events::BrowserEvent, super::socket::AuthFrame)),
    modifiers(&SecuritySchemes),
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

/// One resource of the JSON API, declared once: its handlers'
/// `#[utoipa::path]` give the path and methods the route table mounts it at
/// and the operations the document shows.
pub struct Endpoint {
    /// The path, as documented (from the root).
    path: String,
    routes: Vec<Route>,
    /// Data of this resource only (a body limit, say).
    data: Vec<Box<dyn FnOnce(Resource) -> Resource>>,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
}

impl Endpoint {
    /// `handler` at the path and for the methods of `doc`, its
    /// `#[utoipa::path]` (the `__path_<handler>` it generates).
    pub fn new<D, F, Args>(doc: D, handler: F) -> Self
    where
        D: OpenApiFactory + utoipa::Path,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let mut schemas = Vec::new();
        doc.schemas(&mut schemas);
        let routes = D::methods()
            .into_iter()
            .map(|m| web::route().method(method(m)).to(handler.clone()))
            .collect();
        Self {
            path: D::path(),
            routes,
            data: Vec::new(),
            paths: doc.paths(),
            schemas,
        }
    }

    /// Another handler on the same path, for its own methods.
    pub fn and<D, F, Args>(mut self, doc: D, handler: F) -> Self
    where
        D: OpenApiFactory + utoipa::Path,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let other = Self::new(doc, handler);
        debug_assert_eq!(self.path, other.path, "one endpoint, one path");
        self.routes.extend(other.routes);
        self.paths.merge(other.paths);
        self.schemas.extend(other.schemas);
        self
    }

    /// Data for this resource's handlers only ([`Resource::app_data`]).
    pub fn app_data<U: 'static>(mut self, data: U) -> Self {
        self.data
            .push(Box::new(move |r: Resource| r.app_data(data)));
        self
    }

    /// The path, as documented.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the endpoint lies under `prefix` (a scope's path).
    pub fn is_under(&self, prefix: &str) -> bool {
        self.path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The resource to mount in a scope at `prefix` ("" for the root).
    pub fn into_resource(self, prefix: &str) -> Resource {
        let path = self.path.strip_prefix(prefix).unwrap_or(&self.path);
        let resource = self
            .routes
            .into_iter()
            .fold(web::resource(path), Resource::route);
        self.data.into_iter().fold(resource, |r, data| data(r))
    }
}

/// The HTTP method of a documented operation.
fn method(m: HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// The document of the endpoints the route table mounts.
pub struct Document(utoipa::openapi::OpenApi);

impl Document {
    /// [`ApiDoc`] with the paths and schemas of `api`, every error answer a
    /// problem.
    pub fn of(api: &[Endpoint]) -> Self {
        let mut doc = ApiDoc::openapi();
        for endpoint in api {
            doc.paths.merge(endpoint.paths.clone());
            doc.components
                .get_or_insert_with(Default::default)
                .schemas
                .extend(endpoint.schemas.iter().cloned());
        }
        ProblemAnswers.modify(&mut doc);
        Self(doc)
    }
}

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
pub async fn document(state: web::Data<AppState>, document: web::Data<Document>) -> HttpResponse {
    let mut doc = document.0.clone();
    let settings = state.settings.load();
    let base = settings.server.public_url.as_str();
    doc.servers = Some(vec![Server::new(base.trim_end_matches('/'))]);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        // Public and without credentials: any OpenAPI viewer may load it.
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(doc)
}
