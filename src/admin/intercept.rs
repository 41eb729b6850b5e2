//! Interception of newly created users: `ab_user` is polled above an id
//! watermark and each new user goes through the configured rules, in order,
//! in one transaction; webhooks are called after the commit.
//!
//! With several windsock replicas only the one holding the lock acts
//! (PostgreSQL `pg_try_advisory_lock`, MySQL `GET_LOCK`, each on a
//! dedicated session, so the lock goes when the replica or its connection
//! does). SQLite is single-node: there is no lock to take.
//!
//! Every rule acts only when its condition still holds on the current row
//! (a `/` to replace, a role not yet held, an active user that violates
//! the pattern), so looking at a user twice changes nothing twice. On
//! start and on taking over, users created within `catch_up` are looked at
//! again for that reason; only a webhook may then see a user twice.

use std::sync::Arc;

use regex::Regex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::users::{User, UserError, UserStore, end};
use crate::config::{DatabaseSettings, InterceptSettings, RuleSettings, Violation};
use crate::db::lock::Leader;
use crate::db::url::DbUrl;
use crate::db::write::{Value, WriteTx};
use crate::db::{DbError, Dialect};
use crate::metrics::Store;

/// The advisory lock of the acting replica.
const LOCK_NAME: &str = "windsock.intercept";

/// The channel the optional `ab_user` trigger notifies (PostgreSQL).
pub const NOTIFY_CHANNEL: &str = "windsock_ab_user";

/// The trigger `postgres_notify` installs: it only sends the new id.
const NOTIFY_DDL: [&str; 3] = [
    "CREATE OR REPLACE FUNCTION windsock_ab_user_notify() RETURNS trigger \
     LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('windsock_ab_user', NEW.id::text); \
     RETURN NEW; END $$",
    "DROP TRIGGER IF EXISTS windsock_ab_user_created ON ab_user",
    "CREATE TRIGGER windsock_ab_user_created AFTER INSERT ON ab_user \
     FOR EACH ROW EXECUTE FUNCTION windsock_ab_user_notify()",
];

/// Users taken per poll.
const BATCH: i64 = 100;

/// A compiled rule.
#[derive(Debug, Clone)]
pub enum Rule {
    /// Replace characters in usernames.
    Sanitize {
        /// Characters to replace.
        characters: Vec<char>,
        /// Replacement.
        replacement: String,
    },
    /// Check usernames against a pattern.
    Validate {
        /// The pattern.
        pattern: Regex,
        /// What happens on a violation.
        on_violation: Violation,
    },
    /// Add roles by pattern.
    AssignRoles {
        /// On the username.
        username: Option<Regex>,
        /// On the email.
        email: Option<Regex>,
        /// Roles to add.
        roles: Vec<String>,
    },
    /// Notify a URL.
    Webhook(super::webhook::Webhook),
}

impl Rule {
    fn kind(&self) -> &'static str {
        match self {
            Rule::Sanitize { .. } => "sanitize",
            Rule::Validate { .. } => "validate",
            Rule::AssignRoles { .. } => "assign_roles",
            Rule::Webhook(_) => "webhook",
        }
    }
}

/// Compiles the configured rules (config validation has checked them;
/// this fails only on the same errors).
pub fn compile(settings: &InterceptSettings) -> Result<Vec<Rule>, String> {
    let re = |p: &str| Regex::new(p).map_err(|e| format!("pattern `{p}`: {e}"));
    settings
        .rules
        .iter()
        .map(|r| {
            Ok(match r {
                RuleSettings::Sanitize {
                    characters,
                    replacement,
                } => {
                    if settings.mwaa_safe {
                        return Err("sanitize renames users; refused with mwaa_safe".to_owned());
                    }
                    Rule::Sanitize {
                        characters: characters.chars().collect(),
                        replacement: replacement.clone(),
                    }
                }
                RuleSettings::Validate {
                    pattern,
                    on_violation,
                } => Rule::Validate {
                    pattern: re(pattern)?,
                    on_violation: *on_violation,
                },
                RuleSettings::AssignRoles {
                    username_pattern,
                    email_pattern,
                    roles,
                } => Rule::AssignRoles {
                    username: username_pattern.as_deref().map(re).transpose()?,
                    email: email_pattern.as_deref().map(re).transpose()?,
                    roles: roles.clone(),
                },
                RuleSettings::Webhook {
                    url,
                    timeout,
                    proxy,
                    ca_file,
                    secret_file,
                    secret_env,
                    retries,
                } => {
                    let hook = super::webhook::Webhook::new(
                        url::Url::parse(url).map_err(|e| format!("webhook url: {e}"))?,
                        *timeout,
                        proxy.as_deref(),
                        ca_file.as_deref(),
                    )
                    .map_err(|e| e.to_string())?
                    .with_retries(*retries);
                    let secret = crate::config::webhook_secret(
                        secret_file.as_deref(),
                        secret_env.as_deref(),
                    )?;
                    Rule::Webhook(match secret {
                        Some(s) => hook.signed(&s),
                        None => hook,
                    })
                }
            })
        })
        .collect()
}

/// What one rule did to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    /// Rule type.
    pub rule: &'static str,
    /// `renamed`, `deactivated`, `violation`, `roles_added`, `notified`,
    /// `failed`.
    pub outcome: &'static str,
    /// Human-readable detail (no secrets).
    pub detail: String,
}

/// The interception loop of one target.
#[derive(Debug)]
pub struct Interceptor {
    /// The FAB user tables.
    pub users: Arc<UserStore>,
    /// For the dedicated lock session.
    pub url: DbUrl,
    /// For the `LISTEN` session: without a transaction pooler in between
    /// (`direct_url`), else `url`.
    pub session_url: DbUrl,
    /// Session limits.
    pub database: DatabaseSettings,
    /// Rules, in order.
    pub rules: Vec<Rule>,
    /// Poll interval and catch-up.
    pub settings: InterceptSettings,
    /// Counters.
    pub metrics: Arc<Store>,
    /// Change nothing, report what would change.
    pub dry_run: bool,
    /// Users already handled near the watermark, and failures per user.
    pub state: std::sync::Mutex<PollState>,
}

/// What the poll remembers between cycles.
#[derive(Debug, Default)]
pub struct PollState {
    /// Ids handled (or given up on) within [`LOOKBACK`] of the watermark.
    seen: std::collections::BTreeSet<i64>,
    /// Consecutive failures per user id.
    failures: std::collections::HashMap<i64, u32>,
}

/// Ids below the watermark that each poll looks at again: an insert whose
/// id was taken before a later one's but committed after it is still
/// seen. Handled ids are remembered, so nobody is processed twice.
const LOOKBACK: i64 = 50;

/// Failures after which a user is skipped (audited), so that one user the
/// rules cannot handle does not stall interception.
const MAX_FAILURES: u32 = 3;

impl Interceptor {
    fn remember(&self, id: i64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.seen.insert(id);
        st.failures.remove(&id);
    }

    fn seen(&self, id: i64) -> bool {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.seen.contains(&id)
    }

    /// Tries to become the acting replica.
    async fn try_lead(&self) -> Result<Option<Leader>, DbError> {
        Leader::try_acquire(&self.url, &self.database, LOCK_NAME).await
    }

    fn set_leader(&self, on: bool) {
        self.metrics
            .set("windsock_intercept_leader", &[], f64::from(u8::from(on)));
    }

    /// Runs until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        self.set_leader(false);
        let mut leader: Option<Leader> = None;
        let mut watermark = 0i64;
        let mut notify: Option<sqlx::postgres::PgListener> = None;
        loop {
            if leader.is_none() {
                match self.try_lead().await {
                    Ok(Some(l)) => match self.take_over().await {
                        Ok(w) => {
                            info!(
                                watermark = w,
                                "Interception: this replica now acts on new users."
                            );
                            watermark = w;
                            leader = Some(l);
                            self.set_leader(true);
                            if self.settings.postgres_notify
                                && self.url.dialect() == Dialect::Postgres
                            {
                                notify = self.listen().await;
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "Interception: cannot read ab_user.");
                            l.release().await;
                        }
                    },
                    Ok(None) => {}
                    Err(e) => {
                        warn!(error = %e, "Interception: cannot reach the database for the lock.")
                    }
                }
            }
            if let Some(l) = leader.as_mut() {
                if l.still_held().await {
                    match self.poll(watermark).await {
                        Ok(w) => watermark = w,
                        Err(e) => warn!(error = %e, "Interception: poll failed; retrying."),
                    }
                } else {
                    warn!("Interception: lost the lock session; another replica may take over.");
                    if let Some(l) = leader.take() {
                        l.release().await;
                    }
                    notify = None;
                    self.set_leader(false);
                }
            }
            let wake = async {
                match notify.as_mut() {
                    Some(l) => match l.recv().await {
                        Ok(_) => {}
                        // Polling goes on; the listener reconnects itself.
                        Err(_) => std::future::pending().await,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.settings.interval) => {}
                () = wake => {}
            }
        }
        if let Some(l) = leader {
            l.release().await;
        }
        self.set_leader(false);
    }

    /// PostgreSQL: installs an `AFTER INSERT` trigger on `ab_user` that
    /// notifies `windsock_ab_user`, and listens, so a new user is handled at
    /// once instead of at the next poll. Polling stays the safety net; any
    /// failure here only logs.
    async fn listen(&self) -> Option<sqlx::postgres::PgListener> {
        let install = async {
            let mut tx = self.users.begin().await?;
            let mut res = Ok(());
            for sql in NOTIFY_DDL {
                if let Err(e) = tx.execute(sql, &[]).await {
                    res = Err(UserError::Db(e));
                    break;
                }
            }
            end(tx, res, true).await?;
            let opts = crate::db::session::postgres(&self.session_url, &self.database)
                .map_err(|e| UserError::Db(DbError::Query(e.to_string())))?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect_lazy_with(opts);
            let mut l = sqlx::postgres::PgListener::connect_with(&pool)
                .await
                .map_err(|e| {
                    UserError::Db(DbError::Query(crate::db::url::redact(&e.to_string())))
                })?;
            l.listen(NOTIFY_CHANNEL)
                .await
                .map_err(|e| UserError::Db(DbError::Query(e.to_string())))?;
            Ok::<_, UserError>(l)
        };
        match install.await {
            Ok(l) => {
                info!(
                    channel = NOTIFY_CHANNEL,
                    "Interception: listening for new users."
                );
                Some(l)
            }
            Err(e) => {
                warn!(error = %e, "Interception: cannot install the ab_user trigger; polling only.");
                None
            }
        }
    }

    /// Starts acting: the watermark is the newest user; users created
    /// within `catch_up` are looked at again (idempotent rules).
    pub async fn take_over(&self) -> Result<i64, UserError> {
        let mut tx = self.users.begin().await?;
        let res = async {
            let max = UserStore::max_id(&mut tx).await?;
            let recent =
                UserStore::created_within(&mut tx, self.settings.catch_up.as_secs(), max).await?;
            Ok((max, recent))
        }
        .await;
        let (max, recent) = end(tx, res, false).await?;
        {
            // Users that existed before this replica acted belong to the
            // previous leader (or predate windsock): only `catch_up` looks
            // at them again.
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.seen.extend((max - LOOKBACK).max(0)..=max);
        }
        for id in recent {
            self.process(id).await?;
        }
        Ok(max)
    }

    /// Processes users above `watermark`; returns the new watermark.
    pub async fn poll(&self, mut watermark: i64) -> Result<i64, UserError> {
        loop {
            let from = (watermark - LOOKBACK).max(0);
            let mut tx = self.users.begin().await?;
            let res = UserStore::created_after(&mut tx, from, BATCH + LOOKBACK).await;
            let batch = end(tx, res, false).await?;
            self.metrics.set(
                "windsock_intercept_last_poll_timestamp_seconds",
                &[],
                crate::metrics::now_unix(),
            );
            let full = batch.len() as i64 == BATCH + LOOKBACK;
            for u in batch {
                if self.seen(u.id) {
                    watermark = watermark.max(u.id);
                    continue;
                }
                match self.process(u.id).await {
                    Ok(_) => self.remember(u.id),
                    Err(e) => {
                        let n = {
                            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                            let n = st.failures.entry(u.id).or_insert(0);
                            *n += 1;
                            *n
                        };
                        if n < MAX_FAILURES {
                            warn!(user_id = u.id, error = %e, attempt = n, "Interception: a new user could not be handled; retrying next poll.");
                            return Ok(watermark.min(u.id - 1).max(from));
                        }
                        warn!(
                            target: "windsock::audit",
                            actor = "intercept",
                            user_id = u.id,
                            error = %e,
                            "Interception: giving up on a new user after repeated failures."
                        );
                        self.metrics.add(
                            "windsock_intercept_actions",
                            &[("rule", "pipeline"), ("outcome", "gave_up")],
                            1.0,
                        );
                        self.remember(u.id);
                    }
                }
                watermark = watermark.max(u.id);
            }
            {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let keep = watermark - 2 * LOOKBACK;
                st.seen.retain(|&id| id >= keep);
            }
            if !full {
                return Ok(watermark);
            }
        }
    }

    /// What the webhook's delivery task reports when it is done with the
    /// event about `username`: an audit line and a counter.
    fn webhook_report(&self, host: &str, username: &str) -> super::webhook::Report {
        let (metrics, host, username, dry_run) = (
            self.metrics.clone(),
            host.to_owned(),
            username.to_owned(),
            self.dry_run,
        );
        Box::new(move |res, attempts| {
            let (outcome, detail) = match res {
                Ok(status) => ("notified", format!("{host} answered {status}")),
                Err(e @ super::webhook::WebhookError::QueueFull { .. }) => {
                    ("dropped", e.to_string())
                }
                Err(e) => ("failed", e.to_string()),
            };
            metrics.add(
                "windsock_intercept_actions",
                &[("rule", "webhook"), ("outcome", outcome)],
                1.0,
            );
            info!(
                target: "windsock::audit",
                actor = "intercept",
                action = "webhook",
                outcome,
                username = %super::api::esc(&username),
                detail = %detail,
                attempts,
                dry_run,
                "New-user webhook delivered."
            );
        })
    }

    /// Runs the rules on user `id` in one transaction, then queues the
    /// webhooks' events.
    pub async fn process(&self, id: i64) -> Result<Vec<Action>, UserError> {
        let mut tx = self.users.begin().await?;
        let res = self.apply_all(&mut tx, id).await;
        let Some((user, original, mut actions)) = end(tx, res, !self.dry_run).await? else {
            return Ok(Vec::new());
        };
        self.remember(id);
        self.metrics.add("windsock_intercept_users", &[], 1.0);
        for rule in &self.rules {
            if let Rule::Webhook(hook) = rule {
                let event = serde_json::json!({
                    "event": "user_created",
                    "username": user.username,
                    "created_as": original,
                    "email": user.email,
                    "active": user.active,
                    "roles": user.roles,
                    "actions": actions,
                    "dry_run": self.dry_run,
                });
                hook.enqueue(event, self.webhook_report(hook.host(), &original));
                actions.push(Action {
                    rule: "webhook",
                    outcome: "queued",
                    detail: hook.host().to_owned(),
                });
            }
        }
        for a in &actions {
            self.metrics.add(
                "windsock_intercept_actions",
                &[("rule", a.rule), ("outcome", a.outcome)],
                1.0,
            );
            info!(
                target: "windsock::audit",
                actor = "intercept",
                action = a.rule,
                outcome = a.outcome,
                username = %super::api::esc(&original),
                detail = %a.detail,
                dry_run = self.dry_run,
                "New-user rule applied."
            );
        }
        Ok(actions)
    }
}

impl Interceptor {
    /// The rules other than webhooks, on the current row of user `id`.
    async fn apply_all(
        &self,
        tx: &mut WriteTx,
        id: i64,
    ) -> Result<Option<(User, String, Vec<Action>)>, UserError> {
        let Some(mut user) = user_by_id(tx, id).await? else {
            return Ok(None);
        };
        let original = user.username.clone();
        let mut actions = Vec::new();
        for rule in &self.rules {
            if matches!(rule, Rule::Webhook(_)) {
                continue;
            }
            match apply(tx, rule, &mut user).await {
                Ok(Some(a)) => actions.push(a),
                Ok(None) => {}
                Err(UserError::Db(e)) => return Err(UserError::Db(e)),
                Err(e) => actions.push(Action {
                    rule: rule.kind(),
                    outcome: "failed",
                    detail: e.to_string(),
                }),
            }
        }
        Ok(Some((user, original, actions)))
    }
}

async fn user_by_id(tx: &mut WriteTx, id: i64) -> Result<Option<User>, UserError> {
    // `created_after(id - 1)` with a limit of one is the same row lookup
    // the poll uses, including roles.
    let mut users = UserStore::created_after(tx, id - 1, 1).await?;
    Ok(users.pop().filter(|u| u.id == id))
}

/// Applies one rule; `None` when it had nothing to do.
async fn apply(
    tx: &mut WriteTx,
    rule: &Rule,
    user: &mut User,
) -> Result<Option<Action>, UserError> {
    let d = tx.dialect();
    match rule {
        Rule::Sanitize {
            characters,
            replacement,
        } => {
            if !user.username.chars().any(|c| characters.contains(&c)) {
                return Ok(None);
            }
            let base: String = user
                .username
                .chars()
                .map(|c| {
                    if characters.contains(&c) {
                        replacement.clone()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            let mut candidate = base.clone();
            let mut n = 1;
            loop {
                let taken = tx
                    .scalar(
                        "SELECT COUNT(*) FROM ab_user WHERE lower(username) = lower(?) AND id <> ?",
                        &[candidate.as_str().into(), user.id.into()],
                    )
                    .await?
                    .unwrap_or(0);
                if taken == 0 {
                    break;
                }
                n += 1;
                if n > 100 {
                    return Err(UserError::UsernameTaken(base));
                }
                candidate = format!("{base}{replacement}{n}");
            }
            super::users::check_text("username", &candidate)?;
            tx.execute(
                &format!(
                    "UPDATE ab_user SET username = ?, changed_on = {} WHERE id = ?",
                    super::users::now_sql(d)
                ),
                &[candidate.as_str().into(), user.id.into()],
            )
            .await?;
            let detail = format!("`{}` -> `{candidate}`", user.username);
            user.username = candidate;
            Ok(Some(Action {
                rule: "sanitize",
                outcome: "renamed",
                detail,
            }))
        }
        Rule::Validate {
            pattern,
            on_violation,
        } => {
            if pattern.is_match(&user.username) {
                return Ok(None);
            }
            if *on_violation == Violation::Deactivate && user.active {
                tx.execute(
                    &format!(
                        "UPDATE ab_user SET active = ?, changed_on = {} WHERE id = ?",
                        super::users::now_sql(d)
                    ),
                    &[Value::Bool(false), user.id.into()],
                )
                .await?;
                user.active = false;
                return Ok(Some(Action {
                    rule: "validate",
                    outcome: "deactivated",
                    detail: format!("`{}` does not match {}", user.username, pattern.as_str()),
                }));
            }
            Ok(Some(Action {
                rule: "validate",
                outcome: "violation",
                detail: format!("`{}` does not match {}", user.username, pattern.as_str()),
            }))
        }
        Rule::AssignRoles {
            username,
            email,
            roles,
        } => {
            let matches = username.as_ref().is_none_or(|r| r.is_match(&user.username))
                && email.as_ref().is_none_or(|r| r.is_match(&user.email));
            let missing: Vec<String> = roles
                .iter()
                .filter(|r| !user.has_role(r))
                .cloned()
                .collect();
            if !matches || missing.is_empty() {
                return Ok(None);
            }
            let ids = UserStore::role_ids(tx, &missing).await?;
            for rid in ids {
                UserStore::add_role(tx, user.id, rid).await?;
            }
            for r in &missing {
                user.roles.push(super::users::RoleRef { name: r.clone() });
            }
            Ok(Some(Action {
                rule: "assign_roles",
                outcome: "roles_added",
                detail: missing.join(", "),
            }))
        }
        Rule::Webhook(_) => Ok(None),
    }
}
