//! What the ID token and userinfo say about the person.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::users::UserProfile;

/// The claims of an ID token.
#[derive(Debug, Serialize)]
pub struct IdTokenClaims<'a> {
    pub iss: String,
    pub aud: &'a str,
    /// The authorized party: the app id on a mini-program login's token,
    /// which says what the token is (an app's, not a client's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub azp: Option<&'a str>,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    /// `sub` and the scope's claims (as userinfo answers them).
    #[serde(flatten)]
    pub user: &'a Map<String, Value>,
}

/// The person's claims for `scope`: `sub` (the redeem API's `user.id`),
/// `name` and `picture` with `profile`, `phone_number` and
/// `phone_number_verified` with `phone` when the client may have them, and
/// `unionid` when WeChat gave one.
pub fn user_claims(user: &UserProfile, scope: &[&str]) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    if scope.contains(&"profile") {
        if let Some(name) = &user.nickname {
            claims.insert("name".into(), json!(name));
        }
        if let Some(picture) = &user.avatar_url {
            claims.insert("picture".into(), json!(picture));
        }
    }
    if let Some(unionid) = &user.unionid {
        claims.insert("unionid".into(), json!(unionid));
    }
    // `user.phone_number` is only there for a client with `phone = true`;
    // the number came from WeChat's getuserphonenumber, so it is verified.
    if scope.contains(&"phone")
        && let Some(number) = &user.phone_number
    {
        claims.insert("phone_number".into(), json!(number));
        claims.insert("phone_number_verified".into(), json!(true));
    }
    claims
}
