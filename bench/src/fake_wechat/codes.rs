//! The one-time codes the load tool makes and the fake reads, and the
//! identities derived from them.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Prefix of every code the load tool makes.
const CODE_PREFIX: &str = "bc-";
/// Longest user part of a code.
const MAX_USER: usize = 64;

/// Unix time in milliseconds.
pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A fresh one-time code for bench user `user` (as `wx.login` would give
/// that person's phone). `user` should be 1..=64 characters of
/// `[A-Za-z0-9._-]`; others make codes the fake refuses with 40029.
pub fn new_code(user: &str) -> String {
    format!(
        "{CODE_PREFIX}{user}-{:x}-{:016x}",
        unix_ms(),
        rand::random::<u64>()
    )
}

/// What a well-formed code says: its user and when it was issued.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CodeParts<'a> {
    pub user: &'a str,
    pub issued_ms: u64,
}

pub(super) fn parse_code(code: &str) -> Option<CodeParts<'_>> {
    let rest = code.strip_prefix(CODE_PREFIX)?;
    let (rest, nonce) = rest.rsplit_once('-')?;
    let (user, t) = rest.rsplit_once('-')?;
    let hex = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
    };
    if nonce.len() != 16 || !hex(nonce, 16) || !hex(t, 16) {
        return None;
    }
    let user_ok = !user.is_empty()
        && user.len() <= MAX_USER
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !user_ok {
        return None;
    }
    Some(CodeParts {
        user,
        issued_ms: u64::from_str_radix(t, 16).ok()?,
    })
}

/// A person's openid in one app (stable: the same user, the same openid).
pub(super) fn openid(app_id: &str, user: &str) -> String {
    let digest = Sha256::digest(format!("fake-openid|{app_id}|{user}"));
    format!("o{}", &URL_SAFE_NO_PAD.encode(digest)[..27])
}

/// A person's unionid (the same in every app of one Open Platform account).
pub(super) fn unionid(user: &str) -> String {
    let digest = Sha256::digest(format!("fake-unionid|{user}"));
    format!("u{}", &URL_SAFE_NO_PAD.encode(digest)[..27])
}
