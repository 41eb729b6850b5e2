//! The admin HTTP API, on its own listener.
//!
//! ```text
//! GET    /api/v1/users-ext/?username=<exact, url-encoded>
//! PATCH  /api/v1/users-ext/?username=...[&update_mask=a,b][&dry_run=true]
//! DELETE /api/v1/users-ext/?username=...[&dry_run=true]
//! GET    /api/v1/users-ext/search?q=...&match=prefix|contains&limit=&offset=
//! ```
//!
//! The username travels in the query string, so names with `/` (`domain/user`,
//! MWAA's `assumed-role/Role/session`) need no path tricks. Every request is
//! authenticated before anything else happens; errors are JSON
//! `{"status", "code", "message"}` with stable codes and no internal detail.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tracing::{info, warn};

use super::auth::{Caller, Credentials, FailureLimiter, Principal, Tokens, parse_authorization};
use super::users::{Change, Match, UserError, UserPatch, UserStore, check_text};
use crate::config::Scope;
use crate::metrics::Store;

/// Shared state of the admin handlers.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The FAB user tables.
    pub users: Arc<UserStore>,
    /// Bearer tokens.
    pub tokens: Arc<Tokens>,
    /// Whether basic auth against `ab_user` is accepted.
    pub basic: bool,
    /// Role a basic-auth caller must hold.
    pub required_role: String,
    /// What basic-auth callers may do.
    pub basic_scopes: Vec<Scope>,
    /// The listener serves HTTPS.
    pub tls: bool,
    /// Bearer tokens accepted over plain HTTP from other hosts.
    pub allow_plain_http_tokens: bool,
    /// Failed-attempt limiter.
    pub limiter: Arc<FailureLimiter>,
    /// Where counters go.
    pub metrics: Arc<Store>,
    /// Every write is a dry run.
    pub dry_run: bool,
    /// Largest body accepted.
    pub max_body: usize,
    /// The target's environment (its detected Airflow version picks the
    /// password hash method).
    pub environment: String,
}

impl AdminState {
    /// How FAB on the detected Airflow version hashes passwords; before
    /// detection, pbkdf2-sha256 (which every werkzeug version verifies).
    fn hash_method(&self) -> super::password::Method {
        self.metrics
            .schema(&self.environment)
            .map_or(super::password::Method::AIRFLOW_2, |s| {
                super::password::Method::for_major(s.major)
            })
    }
}

/// An API error: status, stable code, message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"windsock-admin\", Bearer"),
            );
        }
        resp
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> ApiError {
        let status = match &e {
            UserError::NotFound(_) => StatusCode::NOT_FOUND,
            UserError::Forbidden(_) => StatusCode::FORBIDDEN,
            UserError::Ambiguous(_)
            | UserError::UsernameTaken(_)
            | UserError::EmailTaken(_)
            | UserError::LastAdmin(_)
            | UserError::SelfDelete => StatusCode::CONFLICT,
            UserError::UnknownRoles(_) | UserError::Invalid { .. } => StatusCode::BAD_REQUEST,
            UserError::NoFabTables => StatusCode::NOT_IMPLEMENTED,
            UserError::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = match &e {
            // The database's own message may name hosts or SQL: log it,
            // never send it.
            UserError::Db(inner) => {
                warn!(error = %inner, "Admin API: database error.");
                "the Airflow database did not complete the request; see windsock's log".to_owned()
            }
            other => other.to_string(),
        };
        ApiError::new(status, e.code(), message)
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    let users = get(get_user).patch(patch_user).delete(delete_user);
    Router::new()
        .route("/api/v1/users-ext/", users.clone())
        .route("/api/v1/users-ext", users)
        .route("/api/v1/users-ext/search", get(search))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

/// The client for rate limiting: its address, or its /64 for IPv6 (one
/// host usually owns a whole /64 and could rotate through it).
fn client_ip(req: &Request) -> std::net::IpAddr {
    let ip = req
        .extensions()
        .get::<ConnectInfo<super::server::Peer>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip());
    match ip {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            std::net::IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        std::net::IpAddr::V6(v6) => {
            std::net::IpAddr::V4(v6.to_ipv4_mapped().unwrap_or([0, 0, 0, 0].into()))
        }
        v4 => v4,
    }
}

/// A refused request: counted (and, for guesses, charged to the limiter)
/// by the caller; this makes the answer.
fn refuse(
    s: &AdminState,
    ip: IpAddr,
    reason: &'static str,
    status: StatusCode,
    message: &str,
) -> ApiError {
    s.metrics
        .add("windsock_admin_auth_failures", &[("reason", reason)], 1.0);
    warn!(client = %ip, reason, "Admin API: request refused.");
    ApiError::new(status, reason, message)
}

/// 429: this client (and username) used up its failures.
fn rate_limited(s: &AdminState, ip: IpAddr) -> ApiError {
    refuse(
        s,
        ip,
        "rate_limited",
        StatusCode::TOO_MANY_REQUESTS,
        "too many failed attempts; try again later",
    )
}

/// Authenticates every request before routing, and audits it after.
async fn authenticate(State(s): State<AdminState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let subject = audit_subject(req.uri().query());
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization);
    let local = peer_is_local(&req);
    let (actor, resp) = match identify(&s, creds, ip, local).await {
        Ok(p) => {
            let label = p.caller.label();
            req.extensions_mut().insert(p);
            (label, next.run(req).await)
        }
        Err(e) => ("-".to_owned(), e.into_response()),
    };
    info!(
        target: "windsock::audit",
        actor = %esc(&actor),
        client = %ip,
        method = %method,
        path = %esc(&path),
        username = %esc(&subject),
        status = resp.status().as_u16(),
        "Admin request."
    );
    resp
}

/// The `username` (or search `q`) of a request, for its audit line.
fn audit_subject(query: Option<&str>) -> String {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "username" || k == "q")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Control characters and quotes escaped, so no value can forge or break a
/// log line.
pub fn esc(s: &str) -> String {
    s.escape_debug().to_string()
}

/// Who is calling, from the `Authorization` header. Missing credentials
/// are no failed attempt (a health check is not an attack); a valid token
/// passes whatever the limiter says (tokens cannot be guessed).
async fn identify(
    s: &AdminState,
    creds: Option<Credentials>,
    ip: IpAddr,
    local: bool,
) -> Result<Principal, ApiError> {
    match creds {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_credentials",
            "authentication required",
        )),
        Some(Credentials::Bearer(token)) => bearer(s, &token, ip, local),
        Some(Credentials::Basic { username, password }) => basic(s, &username, &password, ip).await,
    }
}

fn bearer(s: &AdminState, token: &str, ip: IpAddr, local: bool) -> Result<Principal, ApiError> {
    if !s.tls && !local && !s.allow_plain_http_tokens {
        return Err(refuse(
            s,
            ip,
            "tls_required",
            StatusCode::FORBIDDEN,
            "bearer tokens are refused over plain HTTP from another host: use HTTPS \
             ([admin.tls]) or, behind a TLS proxy, set admin.auth.allow_plain_http_tokens",
        ));
    }
    if let Some(p) = s.tokens.check(token) {
        return Ok(p);
    }
    let key = (ip, None);
    if s.limiter.blocked(&key) {
        return Err(rate_limited(s, ip));
    }
    s.limiter.fail(key);
    Err(refuse(
        s,
        ip,
        "bad_token",
        StatusCode::UNAUTHORIZED,
        "invalid credentials",
    ))
}

async fn basic(
    s: &AdminState,
    username: &str,
    password: &str,
    ip: IpAddr,
) -> Result<Principal, ApiError> {
    let key = (ip, Some(username.to_lowercase()));
    if s.limiter.blocked(&key) {
        return Err(rate_limited(s, ip));
    }
    // Counted before the (slow) check, so parallel guesses cannot get past
    // the limit; only a success takes the count back.
    s.limiter.fail(key.clone());
    let bad = |reason, status, message| Err(refuse(s, ip, reason, status, message));
    if !s.basic {
        return bad(
            "basic_disabled",
            StatusCode::UNAUTHORIZED,
            "basic authentication is not enabled",
        );
    }
    // Control characters never reach the database (a NUL fails the query
    // on PostgreSQL): a bad name, and a counted failure.
    if check_text("username", username).is_err() {
        return bad(
            "bad_username",
            StatusCode::UNAUTHORIZED,
            "invalid credentials",
        );
    }
    let user = match s
        .users
        .authenticate(username, password, s.hash_method())
        .await
    {
        Ok(Some(user)) => user,
        Ok(None) => {
            return bad(
                "bad_password",
                StatusCode::UNAUTHORIZED,
                "invalid credentials",
            );
        }
        Err(e) => return Err(ApiError::from(e)),
    };
    if !user.has_role(&s.required_role) {
        return bad(
            "forbidden_role",
            StatusCode::FORBIDDEN,
            "the user lacks the role the admin API requires",
        );
    }
    s.limiter.forgive(&key);
    Ok(Principal {
        roles: user.roles.iter().map(|r| r.name.clone()).collect(),
        caller: Caller::User {
            id: user.id,
            username: user.username,
        },
        scopes: s.basic_scopes.clone(),
    })
}

/// Whether the peer is this host (a loopback address).
fn peer_is_local(req: &Request) -> bool {
    req.extensions()
        .get::<ConnectInfo<super::server::Peer>>()
        .is_some_and(|c| {
            let ip = c.0.0.ip();
            ip.is_loopback()
                || matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
        })
}

/// 403 unless the caller holds `scope`.
fn require(p: &Principal, scope: Scope) -> Result<(), ApiError> {
    if p.may(scope) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("{} lacks the `{}` scope", p.caller.label(), scope.name()),
        ))
    }
}

type Params = Query<HashMap<String, String>>;

fn username(p: &HashMap<String, String>) -> Result<&str, ApiError> {
    match p.get("username") {
        Some(u) if !u.is_empty() => {
            check_text("username", u)?;
            Ok(u)
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_username",
            "give the exact username as ?username=<url-encoded name>",
        )),
    }
}

fn flag(p: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match p.get(name).map(String::as_str) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            format!("{name}={other}: use true or false"),
        )),
    }
}

fn count(s: &AdminState, op: &'static str, status: StatusCode) {
    s.metrics.add(
        "windsock_admin_requests",
        &[("operation", op), ("code", status.as_str())],
        1.0,
    );
}

fn finish(s: &AdminState, op: &'static str, res: Result<Response, ApiError>) -> Response {
    let resp = res.unwrap_or_else(IntoResponse::into_response);
    count(s, op, resp.status());
    resp
}

async fn get_user(
    State(s): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(p): Params,
) -> Response {
    let res = async {
        require(&who, Scope::Read)?;
        let user = s.users.get(username(&p)?).await?;
        Ok(axum::Json(user).into_response())
    }
    .await;
    finish(&s, "get", res)
}

async fn search(
    State(s): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(p): Params,
) -> Response {
    let res = async {
        require(&who, Scope::Read)?;
        let q = p.get("q").map(String::as_str).unwrap_or("");
        if q.chars().any(char::is_control) {
            return Err(UserError::Invalid {
                field: "q".into(),
                message: "contains control characters".into(),
            }
            .into());
        }
        let how: Match = match p.get("match").map(String::as_str) {
            None | Some("contains") => Match::Contains,
            Some("prefix") => Match::Prefix,
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("match={other}: use prefix or contains"),
                ));
            }
        };
        let num = |name: &str, default: i64, max: i64| -> Result<i64, ApiError> {
            match p.get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (0..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_parameter",
                            format!("{name} must be an integer from 0 to {max}"),
                        )
                    }),
            }
        };
        let limit = num("limit", 100, 1000)?;
        let offset = num("offset", 0, i64::from(i32::MAX))?;
        let page = s.users.search(q, how, limit, offset).await?;
        Ok(axum::Json(page).into_response())
    }
    .await;
    finish(&s, "search", res)
}

/// Reads a JSON body: 415 unless `Content-Type: application/json`, 413
/// beyond the limit, 400 when it does not parse.
async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as Content-Type: application/json",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not a valid user patch: {e}"),
        )
    })
}

/// Logs and counts an audited write.
fn audit(
    s: &AdminState,
    caller: &Caller,
    action: &'static str,
    target: &str,
    res: &Result<Change, UserError>,
) {
    let outcome = match res {
        Ok(c) if c.dry_run => "dry_run",
        Ok(_) => "applied",
        Err(UserError::Db(_)) => "failed",
        Err(_) => "refused",
    };
    s.metrics.add(
        "windsock_admin_audit_events",
        &[("action", action), ("outcome", outcome)],
        1.0,
    );
    match res {
        Ok(c) => info!(
            target: "windsock::audit",
            actor = %esc(&caller.label()),
            action,
            outcome,
            username = %esc(target),
            before = %serde_json::to_string(&c.before).unwrap_or_default(),
            after = %c.after.as_ref().map(|a| serde_json::to_string(a).unwrap_or_default()).unwrap_or_default(),
            password_changed = c.password_changed,
            "Admin change."
        ),
        Err(e) => info!(
            target: "windsock::audit",
            actor = %esc(&caller.label()),
            action,
            outcome,
            username = %esc(target),
            code = e.code(),
            "Admin change not made."
        ),
    }
}

fn change_response(c: Change, ok: StatusCode) -> Response {
    if c.dry_run {
        let mut resp = axum::Json(json!({
            "dry_run": true,
            "before": c.before,
            "after": c.after,
            "password_changed": c.password_changed,
        }))
        .into_response();
        resp.headers_mut()
            .insert("x-windsock-dry-run", HeaderValue::from_static("true"));
        return resp;
    }
    match c.after {
        Some(after) => (ok, axum::Json(after)).into_response(),
        None => ok.into_response(),
    }
}

async fn patch_user(
    State(s): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(p): Params,
    req: Request,
) -> Response {
    let caller = who.caller.clone();
    let res = async {
        let name = username(&p)?.to_owned();
        let dry_run = s.dry_run || flag(&p, "dry_run")?;
        let (parts, body) = req.into_parts();
        let patch: UserPatch = json_body(&parts.headers, body, s.max_body).await?;
        let patch = match p.get("update_mask") {
            Some(mask) => {
                let fields: Vec<String> = mask
                    .split(',')
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty())
                    .collect();
                patch.masked(&fields)?
            }
            None => patch,
        };
        if patch.roles.is_some() {
            require(&who, Scope::Roles)?;
        }
        if !patch.without_roles().is_empty() {
            require(&who, Scope::Write)?;
        }
        let res = s
            .users
            .patch(&name, patch, &who.actor(), s.hash_method(), dry_run)
            .await;
        audit(&s, &caller, "update", &name, &res);
        Ok(change_response(res?, StatusCode::OK))
    }
    .await;
    finish(&s, "patch", res)
}

async fn delete_user(
    State(s): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(p): Params,
) -> Response {
    let caller = who.caller.clone();
    let res = async {
        require(&who, Scope::Delete)?;
        let name = username(&p)?.to_owned();
        let dry_run = s.dry_run || flag(&p, "dry_run")?;
        let res = s.users.delete(&name, &who.actor(), dry_run).await;
        audit(&s, &caller, "delete", &name, &res);
        Ok(change_response(res?, StatusCode::NO_CONTENT))
    }
    .await;
    finish(&s, "delete", res)
}
