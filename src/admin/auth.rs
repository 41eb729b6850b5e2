//! Who may call the admin API: bearer tokens from config (kept as SHA-256,
//! compared in constant time) and HTTP basic auth against Airflow's own
//! `ab_user` hashes, plus a per-client limit on failed attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::users::{Actor, Reach};
use crate::config::{Scope, TokenSettings};

/// The authenticated caller, as the audit log names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A configured bearer token.
    Token {
        /// The token's name in config.
        name: String,
    },
    /// An Airflow user (basic auth).
    User {
        /// `ab_user.id`.
        id: i64,
        /// Username as stored.
        username: String,
    },
}

impl Caller {
    /// `token:<name>` or `user:<username>`.
    pub fn label(&self) -> String {
        match self {
            Caller::Token { name } => format!("token:{name}"),
            Caller::User { username, .. } => format!("user:{username}"),
        }
    }

    /// The `ab_user.id` of a basic-auth caller.
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Caller::User { id, .. } => Some(*id),
            Caller::Token { .. } => None,
        }
    }
}

/// Hex SHA-256 of a token: what goes into `[[admin.auth.tokens]]`.
pub fn hash_token(token: &str) -> String {
    crate::digest::sha256_hex(token.as_bytes(), 32)
}

/// An authenticated caller and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who it is.
    pub caller: Caller,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The Airflow roles it acts with (a user's own, a token's configured).
    pub roles: Vec<String>,
}

impl Principal {
    /// Whether it holds `scope`.
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The actor of the changes it makes.
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.caller.user_id(),
            reach: Reach::of(&self.roles),
        }
    }
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Principal)>,
}

impl Tokens {
    /// From validated config (64 hex digits each).
    pub fn new(settings: &[TokenSettings]) -> Tokens {
        let entries = settings
            .iter()
            .filter_map(|t| {
                let mut out = [0u8; 32];
                for (i, chunk) in t.sha256.as_bytes().chunks(2).enumerate() {
                    let hex = std::str::from_utf8(chunk).ok()?;
                    *out.get_mut(i)? = u8::from_str_radix(hex, 16).ok()?;
                }
                let principal = Principal {
                    caller: Caller::Token {
                        name: t.name.clone(),
                    },
                    scopes: t.scopes.clone(),
                    roles: t.roles.clone(),
                };
                Some((out, principal))
            })
            .collect();
        Tokens { entries }
    }

    /// The token `presented` is, comparing against every entry in constant
    /// time.
    pub fn check(&self, presented: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (stored, principal) in &self.entries {
            if bool::from(digest.ct_eq(stored)) {
                found = Some(principal.clone());
            }
        }
        found
    }
}

/// Credentials found in an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    /// `Bearer <token>`.
    Bearer(String),
    /// `Basic base64(user:password)`.
    Basic {
        /// Username.
        username: String,
        /// Password.
        password: String,
    },
}

/// Parses an `Authorization` header value; `None` if unusable.
pub fn parse_authorization(value: &str) -> Option<Credentials> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Some(Credentials::Bearer(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        // The username may hold `/` but not `:` (RFC 7617).
        let (username, password) = text.split_once(':')?;
        return Some(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        });
    }
    None
}

/// Whose failures are counted together: a client address, with the
/// username for basic auth (lower-cased, as FAB matches it), so one client
/// guessing one name does not lock out others behind the same address.
pub type LimitKey = (IpAddr, Option<String>);

/// Failed attempts per [`LimitKey`] in a fixed window.
#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    clients: Mutex<HashMap<LimitKey, (Instant, u32)>>,
}

/// Clients remembered at most; older windows are dropped beyond this.
const MAX_CLIENTS: usize = 10_000;

impl FailureLimiter {
    /// `max` failures per `window`.
    pub fn new(max: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            max,
            window,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` used up its failures in the current window.
    pub fn blocked(&self, key: &LimitKey) -> bool {
        let map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|(start, n)| start.elapsed() < self.window && *n >= self.max)
    }

    /// Takes back one counted attempt of `key` (it succeeded).
    pub fn forgive(&self, key: &LimitKey) {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(key) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }

    /// Records a failure of `key`.
    pub fn fail(&self, key: LimitKey) {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CLIENTS {
            let window = self.window;
            map.retain(|_, (start, _)| start.elapsed() < window);
        }
        let entry = map.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_by_hash() {
        let t = Tokens::new(&[TokenSettings {
            name: "ci".into(),
            sha256: hash_token("s3cret"),
            scopes: vec![Scope::Read],
            roles: vec![],
        }]);
        let p = t.check("s3cret").unwrap();
        assert_eq!(p.caller.label(), "token:ci");
        assert!(p.may(Scope::Read) && !p.may(Scope::Write));
        assert_eq!(t.check("s3cret "), None);
        assert_eq!(t.check(""), None);
        // A well-known vector: SHA-256("abc").
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn authorization_headers_parse() {
        assert_eq!(
            parse_authorization("Bearer abc"),
            Some(Credentials::Bearer("abc".into()))
        );
        // "domain/alice:pa:ss" — the password may contain ':'.
        let b64 = base64::engine::general_purpose::STANDARD.encode("domain/alice:pa:ss");
        assert_eq!(
            parse_authorization(&format!("Basic {b64}")),
            Some(Credentials::Basic {
                username: "domain/alice".into(),
                password: "pa:ss".into()
            })
        );
        assert_eq!(parse_authorization("Basic !!!"), None);
        assert_eq!(parse_authorization("Digest x"), None);
        assert_eq!(parse_authorization("Bearer"), None);
    }

    #[test]
    fn limiter_blocks_after_max_failures() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let key = (ip, Some("admin".to_owned()));
        assert!(!l.blocked(&key));
        l.fail(key.clone());
        assert!(!l.blocked(&key));
        l.fail(key.clone());
        assert!(l.blocked(&key));
        assert!(!l.blocked(&(ip, Some("alice".to_owned()))));
        assert!(!l.blocked(&("127.0.0.2".parse().unwrap(), Some("admin".to_owned()))));
        let short = FailureLimiter::new(1, Duration::from_millis(1));
        short.fail(key.clone());
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.blocked(&key));
    }
}
