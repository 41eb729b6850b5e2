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
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tracing::{info, warn};

use super::auth::{Caller, Credentials, FailureLimiter, Tokens, parse_authorization};
use super::users::{Change, Match, UserError, UserPatch, UserStore};
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

/// Authenticates every request before routing; rate-limits failures.
async fn authenticate(State(s): State<AdminState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&req);
    let fail = |reason: &'static str, status: StatusCode, message: &str| {
        s.metrics
            .add("windsock_admin_auth_failures", &[("reason", reason)], 1.0);
        warn!(client = %ip, reason, "Admin API: authentication failed.");
        ApiError::new(status, reason, message).into_response()
    };
    if s.limiter.blocked(ip) {
        return fail(
            "rate_limited",
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; try again later",
        );
    }
    let creds = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_authorization);
    let caller = match creds {
        None => {
            s.limiter.fail(ip);
            return fail(
                "missing_credentials",
                StatusCode::UNAUTHORIZED,
                "authentication required",
            );
        }
        Some(Credentials::Bearer(token)) => match s.tokens.check(&token) {
            Some(name) => Caller::Token { name },
            None => {
                s.limiter.fail(ip);
                return fail("bad_token", StatusCode::UNAUTHORIZED, "invalid credentials");
            }
        },
        Some(Credentials::Basic { .. }) if !s.basic => {
            s.limiter.fail(ip);
            return fail(
                "basic_disabled",
                StatusCode::UNAUTHORIZED,
                "basic authentication is not enabled",
            );
        }
        Some(Credentials::Basic { username, password }) => {
            // Counted before the (slow) check, so parallel guesses cannot
            // get past the limit; a success takes the count back.
            s.limiter.fail(ip);
            match s
                .users
                .authenticate(&username, &password, s.hash_method())
                .await
            {
                Ok(Some(user)) if user.has_role(&s.required_role) => {
                    s.limiter.forgive(ip);
                    Caller::User {
                        id: user.id,
                        username: user.username,
                    }
                }
                Ok(Some(_)) => {
                    return fail(
                        "forbidden_role",
                        StatusCode::FORBIDDEN,
                        "the user lacks the role the admin API requires",
                    );
                }
                Ok(None) => {
                    return fail(
                        "bad_password",
                        StatusCode::UNAUTHORIZED,
                        "invalid credentials",
                    );
                }
                Err(e) => {
                    s.limiter.forgive(ip);
                    return ApiError::from(e).into_response();
                }
            }
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

type Params = Query<HashMap<String, String>>;

fn username(p: &HashMap<String, String>) -> Result<&str, ApiError> {
    match p.get("username") {
        Some(u) if !u.is_empty() => Ok(u),
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

async fn get_user(State(s): State<AdminState>, Query(p): Params) -> Response {
    let res = async {
        let user = s.users.get(username(&p)?).await?;
        Ok(axum::Json(user).into_response())
    }
    .await;
    finish(&s, "get", res)
}

async fn search(State(s): State<AdminState>, Query(p): Params) -> Response {
    let res = async {
        let q = p.get("q").map(String::as_str).unwrap_or("");
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
            actor = %caller.label(),
            action,
            outcome,
            username = %target,
            before = %serde_json::to_string(&c.before).unwrap_or_default(),
            after = %c.after.as_ref().map(|a| serde_json::to_string(a).unwrap_or_default()).unwrap_or_default(),
            password_changed = c.password_changed,
            "Admin change."
        ),
        Err(e) => info!(
            target: "windsock::audit",
            actor = %caller.label(),
            action,
            outcome,
            username = %target,
            code = e.code(),
            "Admin change not made."
        ),
    }
}

fn caller_of(req: &Request) -> Caller {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Token {
            name: "unknown".to_owned(),
        })
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

async fn patch_user(State(s): State<AdminState>, Query(p): Params, req: Request) -> Response {
    let caller = caller_of(&req);
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
        let res = s
            .users
            .patch(&name, patch, caller.user_id(), s.hash_method(), dry_run)
            .await;
        audit(&s, &caller, "update", &name, &res);
        Ok(change_response(res?, StatusCode::OK))
    }
    .await;
    finish(&s, "patch", res)
}

async fn delete_user(State(s): State<AdminState>, Query(p): Params, req: Request) -> Response {
    let caller = caller_of(&req);
    let res = async {
        let name = username(&p)?.to_owned();
        let dry_run = s.dry_run || flag(&p, "dry_run")?;
        let res = s.users.delete(&name, caller.user_id(), dry_run).await;
        audit(&s, &caller, "delete", &name, &res);
        Ok(change_response(res?, StatusCode::NO_CONTENT))
    }
    .await;
    finish(&s, "delete", res)
}
