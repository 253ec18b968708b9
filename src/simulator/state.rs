//! What the simulator holds: the access tokens it issued, the `wx.login` and
//! `getPhoneNumber` codes it handed out, each pretend person's session key
//! and the quota errors asked for. Codes and sessions are bounded
//! ([`MAX_HELD`]) and forgotten when they run out.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dashmap::DashMap;
use rand::RngCore;

use super::SimRefusal;
use crate::clock::now_ms;
use crate::keys::{random_token, secrets_equal};

const CODE_LIFE_MS: i64 = 5 * 60 * 1000;
/// How long a pretend person's session key is kept for `/sim/api/userinfo`.
const SESSION_LIFE_MS: i64 = 30 * 60 * 1000;
/// Most codes, and most sessions, the simulator holds at once: past it,
/// `/sim/api/login` answers 503 until old ones run out.
pub const MAX_HELD: usize = 10_000;
const TOKEN_LIFE_S: i64 = 7200;

struct SimCode {
    app_id: String,
    user: String,
    session_key: String,
    created_at: i64,
    used: bool,
}

/// Who a redeemed `wx.login` code was handed to.
pub(super) struct Redeemed {
    pub app_id: String,
    pub user: String,
    pub session_key: String,
}

/// Why `jscode2session` refuses a code.
pub(super) enum CodeRefusal {
    /// Unknown, another app's, or too old (40029).
    Invalid,
    /// Redeemed before (40163).
    Used,
}

/// The simulator's memory.
#[derive(Default)]
pub(super) struct Held {
    /// app -> (access token, expires at).
    tokens: DashMap<String, (String, i64)>,
    codes: DashMap<String, SimCode>,
    /// Latest session key per (app, user), as WeChat keeps one per person,
    /// with when it was made.
    sessions: DashMap<(String, String), (String, i64)>,
    /// `getPhoneNumber` codes: code -> (app, user, made at).
    phone_codes: DashMap<String, (String, String, i64)>,
    /// Quota errors on demand: app -> how many more code calls answer 45009.
    quota_failures: DashMap<String, u32>,
}

impl Held {
    /// The app's access token and its seconds left: the current one, or a
    /// new one when asked (`force`) or when it has under 5 minutes left.
    pub fn issue_token(&self, app_id: &str, force: bool) -> (String, i64) {
        let now = now_ms();
        let mut entry = self
            .tokens
            .entry(app_id.to_owned())
            .or_insert_with(|| (random_token(), now + TOKEN_LIFE_S * 1000));
        if force || entry.1 - now < 5 * 60 * 1000 {
            *entry = (random_token(), now + TOKEN_LIFE_S * 1000);
        }
        let (token, expires_at) = entry.clone();
        (token, (expires_at - now) / 1000)
    }

    /// The app whose access token this is, if valid.
    pub fn token_app(&self, token: &str) -> Option<String> {
        let now = now_ms();
        self.tokens
            .iter()
            .find(|e| secrets_equal(&e.value().0, token) && e.value().1 > now)
            .map(|e| e.key().clone())
    }

    pub fn token_valid(&self, token: &str) -> bool {
        let now = now_ms();
        self.tokens
            .iter()
            .any(|e| secrets_equal(&e.value().0, token) && e.value().1 > now)
    }

    /// Whether the next code call of `app_id` answers 45009 (and counts it).
    pub fn take_quota_failure(&self, app_id: &str) -> bool {
        let mut spent = false;
        self.quota_failures.remove_if_mut(app_id, |_, left| {
            spent = *left > 0;
            *left = left.saturating_sub(1);
            *left == 0
        });
        spent
    }

    /// Makes the app's next `calls` code calls answer 45009 (0: none).
    pub fn set_quota_failures(&self, app_id: &str, calls: u32) {
        if calls == 0 {
            self.quota_failures.remove(app_id);
        } else {
            self.quota_failures.insert(app_id.to_owned(), calls);
        }
    }

    /// A fresh `getPhoneNumber` code for `user` in `app_id`.
    pub fn phone_code(&self, app_id: &str, user: &str) -> Result<String, SimRefusal> {
        let now = now_ms();
        self.phone_codes
            .retain(|_, (_, _, made)| now - *made < CODE_LIFE_MS);
        if self.phone_codes.len() >= MAX_HELD {
            return Err(SimRefusal::Full);
        }
        let code = format!("simphone{}", random_token());
        self.phone_codes
            .insert(code.clone(), (app_id.to_owned(), user.to_owned(), now));
        Ok(code)
    }

    /// Takes a `getPhoneNumber` code (once): the (app, user) it was made for.
    pub fn take_phone_code(&self, code: &str) -> Option<(String, String)> {
        let now = now_ms();
        self.phone_codes
            .remove(code)
            .filter(|(_, (_, _, made))| now - made < CODE_LIFE_MS)
            .map(|(_, (app_id, user, _))| (app_id, user))
    }

    /// A fresh `wx.login` code for `user` in `app_id`, with a new session key.
    pub fn login(&self, app_id: &str, user: &str) -> Result<String, SimRefusal> {
        let mut key = [0u8; 16];
        rand::rng().fill_bytes(&mut key);
        let session_key = STANDARD.encode(key);
        let code = format!("sim{}", random_token());
        let now = now_ms();
        self.codes.retain(|_, c| now - c.created_at < CODE_LIFE_MS);
        self.sessions
            .retain(|_, (_, made)| now - *made < SESSION_LIFE_MS);
        let session = (app_id.to_owned(), user.to_owned());
        if self.codes.len() >= MAX_HELD
            || (self.sessions.len() >= MAX_HELD && !self.sessions.contains_key(&session))
        {
            return Err(SimRefusal::Full);
        }
        self.sessions.insert(session, (session_key.clone(), now));
        self.codes.insert(
            code.clone(),
            SimCode {
                app_id: app_id.to_owned(),
                user: user.to_owned(),
                session_key,
                created_at: now,
                used: false,
            },
        );
        Ok(code)
    }

    /// Redeems a `wx.login` code for `app_id` (once).
    pub fn redeem(&self, app_id: &str, code: &str) -> Result<Redeemed, CodeRefusal> {
        let Some(mut c) = self.codes.get_mut(code) else {
            return Err(CodeRefusal::Invalid);
        };
        if c.app_id != app_id || now_ms() - c.created_at > CODE_LIFE_MS {
            return Err(CodeRefusal::Invalid);
        }
        if c.used {
            return Err(CodeRefusal::Used);
        }
        c.used = true;
        Ok(Redeemed {
            app_id: c.app_id.clone(),
            user: c.user.clone(),
            session_key: c.session_key.clone(),
        })
    }

    /// The person's current session key (base64), if any.
    pub fn session_key(&self, app_id: &str, user: &str) -> Option<String> {
        self.sessions
            .get(&(app_id.to_owned(), user.to_owned()))
            .map(|k| k.0.clone())
    }
}

#[cfg(test)]
mod bounds {
    use super::*;
    use crate::config::AppSettings;
    use crate::simulator::Simulator;
    use secrecy::SecretString;

    #[test]
    fn codes_and_sessions_are_bounded() {
        let app = AppSettings {
            app_id: "wxsim".into(),
            secret: SecretString::from("s"),
            page: "pages/x".into(),
            env_version: "release".into(),
            check_path: true,
            width: 430,
            auto_color: false,
            line_color: None,
            is_hyaline: false,
        };
        let sim = Simulator::new(&[app], "http://127.0.0.1:1");
        for i in 0..MAX_HELD {
            assert!(sim.login("wxsim", &format!("user{i}")).is_ok());
        }
        assert_eq!(sim.login("wxsim", "one-more"), Err(SimRefusal::Full));
        assert_eq!(sim.login("wxnope", "x"), Err(SimRefusal::UnknownApp));
        assert!(sim.held.codes.len() <= MAX_HELD && sim.held.sessions.len() <= MAX_HELD);
    }
}
