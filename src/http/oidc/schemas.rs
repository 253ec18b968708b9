//! Schemas of the OpenID Connect endpoints that the OpenAPI document
//! describes but no handler builds: the token form is read field by field,
//! userinfo answers stored JSON and the JWK set is `jsonwebtoken`'s. The
//! tests check real answers against them.

use utoipa::ToSchema;

/// The form of `POST /oauth2/token` (`application/x-www-form-urlencoded`).
/// The handler reads the form field by field; the test posts real forms.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// `authorization_code`.
    #[schema(pattern = "^authorization_code$")]
    grant_type: String,
    /// The code from the redirect.
    code: String,
    /// The `redirect_uri` of the authorization request.
    redirect_uri: String,
    /// The PKCE verifier whose S256 is the request's `code_challenge`.
    code_verifier: String,
    /// With `client_secret_post` (else HTTP Basic).
    client_id: Option<String>,
    /// With `client_secret_post` (else HTTP Basic).
    client_secret: Option<String>,
}

/// The claims `GET /oauth2/userinfo` answers (stored as JSON with the
/// access token; the test checks real answers against this).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserInfo {
    /// The user's id (the redeem API's `user.id`).
    sub: String,
    /// The nickname (scope `profile`).
    name: Option<String>,
    /// The avatar URL (scope `profile`).
    picture: Option<String>,
    /// WeChat's `unionid`, when WeChat gave one.
    unionid: Option<String>,
    /// The phone number (scope `phone`, clients with `phone = true`, when known).
    phone_number: Option<String>,
    /// `true`: the number came from WeChat (with `phone_number`).
    phone_number_verified: Option<bool>,
}

/// `GET /oauth2/jwks` (RFC 7517), serialized by the `jsonwebtoken` crate;
/// the test checks real answers against this.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwks {
    /// The current and recent public signing keys.
    keys: Vec<Jwk>,
}

/// One public RSA signing key.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwk {
    /// `RSA`.
    #[schema(pattern = "^RSA$")]
    kty: String,
    /// `sig`.
    #[schema(pattern = "^sig$")]
    r#use: String,
    /// `RS256`.
    #[schema(pattern = "^RS256$")]
    alg: String,
    /// The key id, as in the ID token's header.
    kid: String,
    /// The modulus, base64url.
    n: String,
    /// The public exponent, base64url.
    e: String,
}
