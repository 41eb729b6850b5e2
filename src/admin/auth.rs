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

use crate::config::TokenSettings;

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

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
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
                Some((t.name.clone(), out))
            })
            .collect();
        Tokens { entries }
    }

    /// The name of the token `presented` is, comparing against every entry
    /// in constant time.
    pub fn check(&self, presented: &str) -> Option<String> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (name, stored) in &self.entries {
            if bool::from(digest.ct_eq(stored)) {
                found = Some(name.clone());
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

/// Failed attempts per client address in a fixed window.
#[derive(Debug)]
pub struct FailureLimiter {
    max: u32,
    window: Duration,
    clients: Mutex<HashMap<IpAddr, (Instant, u32)>>,
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

    /// Whether `ip` used up its failures in the current window.
    pub fn blocked(&self, ip: IpAddr) -> bool {
        let map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&ip)
            .is_some_and(|(start, n)| start.elapsed() < self.window && *n >= self.max)
    }

    /// Takes back one counted attempt of `ip` (it succeeded).
    pub fn forgive(&self, ip: IpAddr) {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&ip) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }

    /// Records a failure of `ip`.
    pub fn fail(&self, ip: IpAddr) {
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CLIENTS {
            let window = self.window;
            map.retain(|_, (start, _)| start.elapsed() < window);
        }
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
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
        }]);
        assert_eq!(t.check("s3cret").as_deref(), Some("ci"));
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
        assert!(!l.blocked(ip));
        l.fail(ip);
        assert!(!l.blocked(ip));
        l.fail(ip);
        assert!(l.blocked(ip));
        assert!(!l.blocked("127.0.0.2".parse().unwrap()));
        let short = FailureLimiter::new(1, Duration::from_millis(1));
        short.fail(ip);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.blocked(ip));
    }
}
