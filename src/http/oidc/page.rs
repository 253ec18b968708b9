//! The hub's pages for OpenID Connect: the authorize page that shows the
//! code, and the refusal page; in Chinese or English.

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use crate::keys::random_token;
use crate::oidc::PendingAuthorization;
use crate::state::AppState;

/// The authorize page's template.
const PAGE: &str = include_str!("../../../web/authorize.html");

/// The person's language: `en` when the browser prefers English over
/// Chinese, else `zh-CN`.
pub(super) fn language(req: &HttpRequest) -> Lang {
    let Some(accept) = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Lang::Zh;
    };
    let mut best: Option<(f32, Lang)> = None;
    for part in accept.split(',').take(32) {
        let mut bits = part.split(';');
        let tag = bits.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = bits
            .find_map(|b| b.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = if tag == "en" || tag.starts_with("en-") {
            Lang::En
        } else if tag == "zh" || tag.starts_with("zh-") {
            Lang::Zh
        } else {
            continue;
        };
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::Zh, |(_, l)| l)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    Zh,
    En,
}

/// Escapes text for HTML content and attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers every hub page carries: no framing, no caching, no referrer.
fn page_headers(res: &mut actix_web::HttpResponseBuilder, csp: &str) {
    res.insert_header((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
}

/// The page that shows the code for the client.
pub(super) fn page(state: &AppState, p: &PendingAuthorization, lang: Lang) -> HttpResponse {
    let hub = crate::oidc::issuer(&state.settings.load());
    let hub_origin = state
        .settings
        .load()
        .server
        .public_url
        .origin()
        .ascii_serialization();
    let ws_origin = hub_origin.replacen("http", "ws", 1);
    let back_to = url::Url::parse(&p.redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let name = &p.client_name;
    let (html_lang, title, heading, explain, where_, text) = match lang {
        Lang::Zh => (
            "zh-CN",
            format!("登录 {name}"),
            format!("用微信登录 {name}"),
            format!("请用微信扫描下方的小程序码，并在手机上确认。确认后你将回到 {name}。"),
            format!("登录完成后返回：{back_to}"),
            json!({
                "confirmed": "登录成功，正在返回…",
                "cancelled": "你已在手机上取消登录，正在返回…",
                "failed": "无法完成登录：",
            }),
        ),
        Lang::En => (
            "en",
            format!("Log in to {name}"),
            format!("Log in to {name} with WeChat"),
            format!(
                "Scan the code below with WeChat and confirm on your phone. You will then return to {name}."
            ),
            format!("After logging in you return to: {back_to}"),
            json!({
                "confirmed": "Logged in, returning…",
                "cancelled": "You cancelled on the phone, returning…",
                "failed": "The login could not be finished:",
            }),
        ),
    };
    let data = json!({
        "hub": hub,
        "client_id": p.client_id,
        "lang": html_lang,
        "handle": p.handle,
        "text": text,
    })
    .to_string()
    // Inside <script>: no "</script>" or "<!--" can appear.
    .replace('<', "\\u003c");
    let nonce = random_token();
    let body = PAGE
        .replace("{{lang}}", html_lang)
        .replace("{{title}}", &escape(&title))
        .replace("{{heading}}", &escape(&heading))
        .replace("{{explain}}", &escape(&explain))
        .replace("{{where}}", &escape(&where_))
        .replace("{{hub}}", &escape(&hub))
        .replace("{{nonce}}", &nonce)
        .replace("{{data}}", &data);
    // Scripts and styles run only with this response's nonce (the widget
    // gives its own <style> the nonce of the script tag that loaded it).
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' {hub_origin} https: data:; connect-src 'self' {hub_origin} {ws_origin}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut res = HttpResponse::Ok();
    page_headers(&mut res, &csp);
    res.content_type(ContentType::html()).body(body)
}

/// 400: the client or its redirect URI is not known good, so the browser
/// is not sent anywhere.
pub(super) fn refusal_page(why: &str, lang: Lang) -> HttpResponse {
    let (html_lang, title, lead) = match lang {
        Lang::Zh => ("zh-CN", "无法登录", "这个登录请求有误，无法继续："),
        Lang::En => ("en", "Cannot log in", "This login request is not valid:"),
    };
    let body = format!(
        "<!doctype html>\n<html lang=\"{html_lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title></head><body><main><h1>{title}</h1><p>{lead} {}</p></main></body></html>\n",
        escape(why)
    );
    let mut res = HttpResponse::BadRequest();
    page_headers(
        &mut res,
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    );
    res.content_type(ContentType::html()).body(body)
}
