//! Airflow's FAB users (`ab_user`, `ab_role`, `ab_user_role`): lookup by
//! exact username, search, change and delete, each in one transaction.
//!
//! Lookup follows FAB's rule (`auth_username_ci`, on by default):
//! `lower(username) = lower(:name)`, evaluated by the database as FAB
//! does. When several stored names differ only in case, an exact match
//! wins; without one the name is ambiguous (FAB itself refuses the login).

use serde::{Deserialize, Serialize};

use super::password::{self, Method};
use crate::db::write::{Value, WriteDb, WriteTx};
use crate::db::{Cell, DbError, Dialect, Rows};

/// The role whose last active holder may not be removed.
pub const ADMIN_ROLE: &str = "Admin";

/// Longest username, name or email windsock writes (FAB's narrowest columns
/// across Airflow 2.7 to 3.x are 256 characters).
const MAX_FIELD: usize = 256;

/// Why a user operation failed. Each has a stable code for API clients.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No user has that name.
    #[error("no user named `{0}`")]
    NotFound(String),
    /// Several users match case-insensitively, none exactly.
    #[error("`{0}` matches several users that differ only in case; give the exact name")]
    Ambiguous(String),
    /// Another user has that username.
    #[error("username `{0}` is taken by another user")]
    UsernameTaken(String),
    /// Another user has that email.
    #[error("email `{0}` is taken by another user")]
    EmailTaken(String),
    /// Roles that do not exist in `ab_role`.
    #[error("unknown roles: {}", .0.join(", "))]
    UnknownRoles(Vec<String>),
    /// A field value is not acceptable.
    #[error("field `{field}`: {message}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The change would leave no active Admin.
    #[error("refused: `{0}` is the last active Admin")]
    LastAdmin(String),
    /// A caller tried to delete itself.
    #[error("refused: a caller cannot delete its own user")]
    SelfDelete,
    /// The caller's roles do not reach that far.
    #[error("refused: {0}")]
    Forbidden(String),
    /// The FAB tables are not there (Airflow 3 without the FAB auth manager).
    #[error("this Airflow database has no FAB user tables (ab_user)")]
    NoFabTables,
    /// The database failed; details go to the log only.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl UserError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            UserError::NotFound(_) => "user_not_found",
            UserError::Ambiguous(_) => "username_ambiguous",
            UserError::UsernameTaken(_) => "username_taken",
            UserError::EmailTaken(_) => "email_taken",
            UserError::UnknownRoles(_) => "unknown_role",
            UserError::Invalid { .. } => "invalid_field",
            UserError::LastAdmin(_) => "last_admin",
            UserError::SelfDelete => "self_delete",
            UserError::Forbidden(_) => "forbidden",
            UserError::NoFabTables => "no_fab_tables",
            UserError::Db(DbError::Timeout { .. }) => "database_timeout",
            UserError::Db(_) => "database_error",
        }
    }

    fn invalid(field: &str, message: impl Into<String>) -> UserError {
        UserError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// A role reference, as Airflow's API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleRef {
    /// Role name.
    pub name: String,
}

/// A user in the shape of Airflow's own user API.
#[derive(Clone, PartialEq, Serialize)]
pub struct User {
    /// `ab_user.id` (not part of Airflow's schema; kept out of responses).
    #[serde(skip)]
    pub id: i64,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Username, exactly as stored.
    pub username: String,
    /// Email.
    pub email: String,
    /// Whether the user may log in.
    pub active: bool,
    /// Roles, sorted by name.
    pub roles: Vec<RoleRef>,
    /// Creation time as stored (FAB writes naive local time, UTC on MWAA).
    pub created_on: Option<String>,
    /// Last change.
    pub changed_on: Option<String>,
    /// Last login.
    pub last_login: Option<String>,
    /// Successful logins.
    pub login_count: Option<i64>,
    /// Failed logins since the last success.
    pub failed_login_count: Option<i64>,
    /// The stored password hash (never serialized).
    #[serde(skip)]
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password hash is never printed.
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("active", &self.active)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Whether the user holds `role` (exact name).
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.name == role)
    }
}

/// A PATCH body: every field optional; unknown fields are an error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New first name.
    pub first_name: Option<String>,
    /// New last name.
    pub last_name: Option<String>,
    /// New username (a rename).
    pub username: Option<String>,
    /// New email.
    pub email: Option<String>,
    /// New password (hashed as FAB does; never logged).
    pub password: Option<String>,
    /// Replacement role list.
    pub roles: Option<Vec<RoleRef>>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

/// The fields of a patch, in `update_mask` terms.
pub const PATCH_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "username",
    "email",
    "password",
    "roles",
    "active",
];

impl UserPatch {
    /// Keeps only the fields named in `mask` (Airflow's `update_mask`);
    /// a masked field missing from the body is an error.
    pub fn masked(self, mask: &[String]) -> Result<UserPatch, UserError> {
        let mut out = UserPatch::default();
        for field in mask {
            let missing = || UserError::invalid(field, "is in update_mask but not in the body");
            match field.as_str() {
                "first_name" => out.first_name = Some(self.first_name.clone().ok_or_else(missing)?),
                "last_name" => out.last_name = Some(self.last_name.clone().ok_or_else(missing)?),
                "username" => out.username = Some(self.username.clone().ok_or_else(missing)?),
                "email" => out.email = Some(self.email.clone().ok_or_else(missing)?),
                "password" => out.password = Some(self.password.clone().ok_or_else(missing)?),
                "roles" => out.roles = Some(self.roles.clone().ok_or_else(missing)?),
                "active" => out.active = Some(self.active.ok_or_else(missing)?),
                other => {
                    return Err(UserError::invalid(
                        "update_mask",
                        format!("unknown field `{other}`; use {}", PATCH_FIELDS.join(", ")),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The patch without its `roles` (what needs the `write` scope).
    pub fn without_roles(&self) -> UserPatch {
        UserPatch {
            roles: None,
            ..self.clone()
        }
    }

    /// Whether it names no field.
    pub fn is_empty(&self) -> bool {
        self.first_name.is_none()
            && self.last_name.is_none()
            && self.username.is_none()
            && self.email.is_none()
            && self.password.is_none()
            && self.roles.is_none()
            && self.active.is_none()
    }

    fn validate(&self) -> Result<(), UserError> {
        for (field, v) in [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("username", &self.username),
            ("email", &self.email),
        ] {
            if let Some(v) = v {
                check_text(field, v)?;
            }
        }
        if let Some(e) = &self.email
            && !e.contains('@')
        {
            return Err(UserError::invalid("email", "is not an email address"));
        }
        if let Some(p) = &self.password
            && p.is_empty()
        {
            return Err(UserError::invalid("password", "is empty"));
        }
        Ok(())
    }
}

/// Rejects empty, over-long or control-character values.
pub fn check_text(field: &str, v: &str) -> Result<(), UserError> {
    if v.trim().is_empty() {
        return Err(UserError::invalid(field, "is empty"));
    }
    if v.chars().count() > MAX_FIELD {
        return Err(UserError::invalid(
            field,
            format!("is longer than {MAX_FIELD} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(UserError::invalid(field, "contains control characters"));
    }
    Ok(())
}

/// How far a caller's roles reach: an Admin reaches every user and role;
/// anyone else only users whose roles it holds all of, and only those roles
/// to grant or take (so nobody makes anyone more than itself). Airflow's
/// built-in roles nest (each has the permissions of the ones below it:
/// Op ⊃ User ⊃ Viewer ⊃ Public), so holding one reaches those below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// An Admin.
    All,
    /// The caller's roles, with the built-in ones below them.
    Within(Vec<String>),
}

/// Airflow's built-in roles below Admin, highest first.
const BUILT_IN: [&str; 4] = ["Op", "User", "Viewer", "Public"];

impl Reach {
    /// From the roles a caller acts with.
    pub fn of(roles: &[String]) -> Reach {
        if roles.iter().any(|r| r == ADMIN_ROLE) {
            return Reach::All;
        }
        let mut own = roles.to_vec();
        if let Some(top) = BUILT_IN.iter().position(|b| roles.iter().any(|r| r == b)) {
            own.extend(BUILT_IN[top..].iter().map(|b| (*b).to_owned()));
        }
        own.sort();
        own.dedup();
        Reach::Within(own)
    }

    fn holds(&self, role: &str) -> bool {
        match self {
            Reach::All => true,
            Reach::Within(own) => own.iter().any(|r| r == role),
        }
    }

    /// Whether the caller may change or delete `user`.
    fn check_target(&self, user: &User) -> Result<(), UserError> {
        match user.roles.iter().find(|r| !self.holds(&r.name)) {
            None => Ok(()),
            Some(r) => Err(UserError::Forbidden(format!(
                "`{}` holds role {}, which the caller does not",
                user.username, r.name
            ))),
        }
    }

    /// Whether the caller may turn `before`'s roles into `after`.
    fn check_roles(&self, before: &User, after: &[RoleRef]) -> Result<(), UserError> {
        let added = after.iter().filter(|r| !before.has_role(&r.name));
        let removed = before
            .roles
            .iter()
            .filter(|r| !after.iter().any(|a| a.name == r.name));
        match added.chain(removed).find(|r| !self.holds(&r.name)) {
            None => Ok(()),
            Some(r) => Err(UserError::Forbidden(format!(
                "the caller cannot grant or take role {}, which it does not hold",
                r.name
            ))),
        }
    }
}

/// Attempts of one change when concurrent transactions abort it (a
/// deadlock between two last-Admin checks on PostgreSQL, say).
const ATTEMPTS: u32 = 3;

/// One page of a search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchPage {
    /// The users of this page.
    pub users: Vec<User>,
    /// How many users match in all.
    pub total_entries: i64,
}

/// A change as the audit log records it: before and after, no secrets.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The user before.
    pub before: User,
    /// The user after (`None` for a delete).
    pub after: Option<User>,
    /// Whether the password was changed (the value is never recorded).
    pub password_changed: bool,
    /// Whether this was a dry run (nothing committed).
    pub dry_run: bool,
}

/// Access to the FAB user tables of one Airflow database.
#[derive(Debug, Clone)]
pub struct UserStore {
    db: WriteDb,
}

/// `u.<col>` as ISO-8601 text named `<col>`.
fn ts(dialect: Dialect, col: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("to_char(u.{col}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS {col}"),
        Dialect::MySql => format!("DATE_FORMAT(u.{col}, '%Y-%m-%dT%H:%i:%s.%f') AS {col}"),
        Dialect::Sqlite => format!("replace(u.{col}, ' ', 'T') AS {col}"),
    }
}

/// The current UTC time as the dialect writes a naive timestamp.
pub fn now_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "LOCALTIMESTAMP",
        Dialect::MySql => "UTC_TIMESTAMP(6)",
        Dialect::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    }
}

fn user_columns(dialect: Dialect) -> String {
    format!(
        "u.id, u.first_name, u.last_name, u.username, u.email, \
         CASE WHEN u.active THEN 1 ELSE 0 END AS active, {}, {}, {}, \
         u.login_count, u.fail_login_count, u.password",
        ts(dialect, "created_on"),
        ts(dialect, "changed_on"),
        ts(dialect, "last_login"),
    )
}

fn text(c: &Cell) -> Option<String> {
    match c {
        Cell::Null => None,
        other => Some(other.as_label()),
    }
}

fn int(c: &Cell) -> Option<i64> {
    c.as_f64().map(|f| f as i64)
}

fn users_from(rows: &Rows) -> Vec<User> {
    rows.rows
        .iter()
        .map(|r| User {
            id: int(&r[0]).unwrap_or_default(),
            first_name: text(&r[1]).unwrap_or_default(),
            last_name: text(&r[2]).unwrap_or_default(),
            username: text(&r[3]).unwrap_or_default(),
            email: text(&r[4]).unwrap_or_default(),
            active: int(&r[5]) == Some(1),
            roles: Vec::new(),
            created_on: text(&r[6]),
            changed_on: text(&r[7]),
            last_login: text(&r[8]),
            login_count: int(&r[9]),
            failed_login_count: int(&r[10]),
            password_hash: text(&r[11]),
        })
        .collect()
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `%`, `_` and the escape character itself escaped for `LIKE ... ESCAPE '!'`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// How a search matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    /// Username starts with the query.
    Prefix,
    /// Username contains the query.
    #[default]
    Contains,
}

impl UserStore {
    /// A store on the writable pool `db`.
    pub fn new(db: WriteDb) -> UserStore {
        UserStore { db }
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Opens a transaction (for the interception pipeline).
    pub async fn begin(&self) -> Result<WriteTx, UserError> {
        Ok(self.db.begin().await?)
    }

    /// Fills in the roles of `users`.
    pub async fn load_roles(tx: &mut WriteTx, users: &mut [User]) -> Result<(), UserError> {
        if users.is_empty() {
            return Ok(());
        }
        let ids: Vec<Value> = users.iter().map(|u| Value::Int(u.id)).collect();
        let sql = format!(
            "SELECT ur.user_id, r.name FROM ab_user_role ur JOIN ab_role r ON r.id = ur.role_id \
             WHERE ur.user_id IN ({}) ORDER BY r.name",
            placeholders(ids.len())
        );
        let rows = tx.fetch(&sql, &ids).await?;
        for r in &rows.rows {
            let (Some(uid), Some(name)) = (int(&r[0]), text(&r[1])) else {
                continue;
            };
            if let Some(u) = users.iter_mut().find(|u| u.id == uid) {
                u.roles.push(RoleRef { name });
            }
        }
        Ok(())
    }

    /// Finds a user in an open transaction (`lock`: `FOR UPDATE` where the
    /// dialect has it).
    pub async fn find_in(tx: &mut WriteTx, username: &str, lock: bool) -> Result<User, UserError> {
        let d = tx.dialect();
        let lock = if lock && d != Dialect::Sqlite {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {} FROM ab_user u WHERE lower(u.username) = lower(?) ORDER BY u.id{lock}",
            user_columns(d)
        );
        let rows = tx.fetch(&sql, &[username.into()]).await.map_err(no_fab)?;
        let mut users = users_from(&rows);
        let pick = match users.len() {
            0 => return Err(UserError::NotFound(username.to_owned())),
            1 => 0,
            _ => users
                .iter()
                .position(|u| u.username == username)
                .ok_or_else(|| UserError::Ambiguous(username.to_owned()))?,
        };
        let mut user = vec![users.swap_remove(pick)];
        Self::load_roles(tx, &mut user).await?;
        Ok(user.remove(0))
    }

    /// The user named `username` (FAB's case-insensitive rule).
    pub async fn get(&self, username: &str) -> Result<User, UserError> {
        let mut tx = self.db.begin().await?;
        let out = Self::find_in(&mut tx, username, false).await;
        end(tx, out, false).await
    }

    /// Users whose name starts with / contains `q` (case-insensitive),
    /// ordered by username.
    pub async fn search(
        &self,
        q: &str,
        how: Match,
        limit: i64,
        offset: i64,
    ) -> Result<SearchPage, UserError> {
        let d = self.db.dialect();
        let pattern = match how {
            Match::Prefix => format!("{}%", like_escape(q)),
            Match::Contains => format!("%{}%", like_escape(q)),
        };
        let mut tx = self.db.begin().await?;
        let res = Self::search_in_page(&mut tx, d, pattern, limit, offset).await;
        end(tx, res, false).await.map(|(users, total)| SearchPage {
            users,
            total_entries: total,
        })
    }

    async fn search_in_page(
        tx: &mut WriteTx,
        d: Dialect,
        pattern: String,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<User>, i64), UserError> {
        let cond = "lower(u.username) LIKE lower(?) ESCAPE '!'";
        let total = tx
            .scalar(
                &format!("SELECT COUNT(*) FROM ab_user u WHERE {cond}"),
                &[pattern.clone().into()],
            )
            .await
            .map_err(no_fab)?
            .unwrap_or(0);
        let rows = tx
            .fetch(
                &format!(
                    "SELECT {} FROM ab_user u WHERE {cond} ORDER BY u.username, u.id LIMIT ? OFFSET ?",
                    user_columns(d)
                ),
                &[pattern.into(), limit.into(), offset.into()],
            )
            .await?;
        let mut users = users_from(&rows);
        Self::load_roles(tx, &mut users).await?;
        Ok((users, total))
    }

    /// Role ids by exact name; unknown names are an error.
    pub async fn role_ids(tx: &mut WriteTx, names: &[String]) -> Result<Vec<i64>, UserError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let binds: Vec<Value> = names.iter().map(|n| n.as_str().into()).collect();
        let rows = tx
            .fetch(
                &format!(
                    "SELECT id, name FROM ab_role WHERE name IN ({})",
                    placeholders(binds.len())
                ),
                &binds,
            )
            .await?;
        let found: Vec<(i64, String)> = rows
            .rows
            .iter()
            .filter_map(|r| Some((int(&r[0])?, text(&r[1])?)))
            .collect();
        let mut unknown = Vec::new();
        let mut ids = Vec::new();
        for n in names {
            // Exact: MySQL's case-insensitive collation may have matched
            // `admin` to `Admin`.
            match found.iter().find(|(_, f)| f == n) {
                Some((id, _)) => ids.push(*id),
                None => unknown.push(n.clone()),
            }
        }
        if unknown.is_empty() {
            ids.sort_unstable();
            ids.dedup();
            Ok(ids)
        } else {
            Err(UserError::UnknownRoles(unknown))
        }
    }

    /// Adds a role to a user (no-op if held).
    pub async fn add_role(tx: &mut WriteTx, user_id: i64, role_id: i64) -> Result<bool, UserError> {
        let held = tx
            .scalar(
                "SELECT COUNT(*) FROM ab_user_role WHERE user_id = ? AND role_id = ?",
                &[user_id.into(), role_id.into()],
            )
            .await?
            .unwrap_or(0);
        if held > 0 {
            return Ok(false);
        }
        let sql = match tx.dialect() {
            // FAB declares explicit sequences; Airflow 3's schema has no
            // column default, so the id comes from the sequence.
            Dialect::Postgres => {
                "INSERT INTO ab_user_role (id, user_id, role_id) \
                 VALUES (nextval('ab_user_role_id_seq'), ?, ?)"
            }
            // Airflow 3's FAB tables on MySQL have no AUTO_INCREMENT (see
            // tests/fixtures/schema/3.*/mysql.sql), and FAB's explicit
            // sequence does not exist there: take the next id in the
            // transaction. Harmless where the column does auto-increment.
            Dialect::MySql => {
                "INSERT INTO ab_user_role (id, user_id, role_id) \
                 SELECT COALESCE(MAX(id), 0) + 1, ?, ? FROM ab_user_role"
            }
            Dialect::Sqlite => "INSERT INTO ab_user_role (user_id, role_id) VALUES (?, ?)",
        };
        tx.execute(sql, &[user_id.into(), role_id.into()]).await?;
        Ok(true)
    }

    /// Active users holding `Admin`, other than `except` (locked on
    /// PostgreSQL/MySQL so two concurrent removals cannot both pass).
    async fn other_active_admins(tx: &mut WriteTx, except: i64) -> Result<i64, UserError> {
        let lock = if tx.dialect() == Dialect::Sqlite {
            ""
        } else {
            " FOR UPDATE"
        };
        let rows = tx
            .fetch(
                &format!(
                    "SELECT u.id FROM ab_user u JOIN ab_user_role ur ON ur.user_id = u.id \
                     JOIN ab_role r ON r.id = ur.role_id \
                     WHERE r.name = ? AND u.active = ? AND u.id <> ?{lock}"
                ),
                &[ADMIN_ROLE.into(), true.into(), except.into()],
            )
            .await?;
        Ok(rows.rows.len() as i64)
    }

    /// Applies `patch` to the user named `username`, in one transaction.
    /// `dry_run` computes the result and rolls back.
    pub async fn patch(
        &self,
        username: &str,
        patch: UserPatch,
        by: &Actor,
        method: Method,
        dry_run: bool,
    ) -> Result<Change, UserError> {
        patch.validate()?;
        if patch.is_empty() {
            return Err(UserError::invalid("body", "names no field to change"));
        }
        let (before, after) = retry_conflicts(|| async {
            let mut tx = self.db.begin().await?;
            let res = Self::patch_in(&mut tx, username, &patch, by, method).await;
            end(tx, res, !dry_run).await
        })
        .await?;
        Ok(Change {
            before,
            after: Some(after),
            password_changed: patch.password.is_some(),
            dry_run,
        })
    }

    async fn patch_in(
        tx: &mut WriteTx,
        username: &str,
        patch: &UserPatch,
        by: &Actor,
        method: Method,
    ) -> Result<(User, User), UserError> {
        let before = Self::find_in(tx, username, true).await?;
        by.reach.check_target(&before)?;
        if let Some(roles) = &patch.roles {
            by.reach.check_roles(&before, roles)?;
        }
        let changed_by = by.user_id;
        let id = before.id;
        let d = tx.dialect();

        if let Some(new) = &patch.username
            && new != &before.username
        {
            // A case-only rename of the same user is not a conflict: the
            // check excludes the user itself.
            let taken = tx
                .fetch(
                    "SELECT username FROM ab_user WHERE lower(username) = lower(?) AND id <> ?",
                    &[new.as_str().into(), id.into()],
                )
                .await?;
            if !taken.rows.is_empty() {
                return Err(UserError::UsernameTaken(new.clone()));
            }
        }
        if let Some(email) = &patch.email
            && email != &before.email
        {
            let taken = tx
                .scalar(
                    "SELECT COUNT(*) FROM ab_user WHERE lower(email) = lower(?) AND id <> ?",
                    &[email.as_str().into(), id.into()],
                )
                .await?
                .unwrap_or(0);
            if taken > 0 {
                return Err(UserError::EmailTaken(email.clone()));
            }
        }
        let role_ids = match &patch.roles {
            Some(roles) => {
                let names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
                Some(Self::role_ids(tx, &names).await?)
            }
            None => None,
        };
        let loses_admin = before.active
            && before.has_role(ADMIN_ROLE)
            && (patch.active == Some(false)
                || patch
                    .roles
                    .as_ref()
                    .is_some_and(|r| !r.iter().any(|r| r.name == ADMIN_ROLE)));
        if loses_admin && Self::other_active_admins(tx, id).await? == 0 {
            return Err(UserError::LastAdmin(before.username.clone()));
        }

        let mut sets: Vec<String> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        for (col, v) in [
            ("first_name", &patch.first_name),
            ("last_name", &patch.last_name),
            ("username", &patch.username),
            ("email", &patch.email),
        ] {
            if let Some(v) = v {
                sets.push(format!("{col} = ?"));
                values.push(v.as_str().into());
            }
        }
        if let Some(pw) = &patch.password {
            sets.push("password = ?".to_owned());
            values.push(password::generate(method, pw).into());
        }
        if let Some(a) = patch.active {
            sets.push("active = ?".to_owned());
            values.push(a.into());
        }
        sets.push(format!("changed_on = {}", now_sql(d)));
        if let Some(by) = changed_by {
            sets.push("changed_by_fk = ?".to_owned());
            values.push(by.into());
        }
        values.push(id.into());
        tx.execute(
            &format!("UPDATE ab_user SET {} WHERE id = ?", sets.join(", ")),
            &values,
        )
        .await?;
        if let Some(ids) = role_ids {
            tx.execute("DELETE FROM ab_user_role WHERE user_id = ?", &[id.into()])
                .await?;
            for rid in ids {
                Self::add_role(tx, id, rid).await?;
            }
        }
        let after_name = patch.username.as_deref().unwrap_or(&before.username);
        let after = Self::find_in(tx, after_name, false).await?;
        Ok((before, after))
    }

    /// Deletes the user named `username`. Refuses the caller's own user and
    /// the last active Admin.
    pub async fn delete(
        &self,
        username: &str,
        by: &Actor,
        dry_run: bool,
    ) -> Result<Change, UserError> {
        let before = retry_conflicts(|| async {
            let mut tx = self.db.begin().await?;
            let res = Self::delete_in(&mut tx, username, by).await;
            end(tx, res, !dry_run).await
        })
        .await?;
        Ok(Change {
            before,
            after: None,
            password_changed: false,
            dry_run,
        })
    }

    async fn delete_in(tx: &mut WriteTx, username: &str, by: &Actor) -> Result<User, UserError> {
        let before = Self::find_in(tx, username, true).await?;
        if by.user_id == Some(before.id) {
            return Err(UserError::SelfDelete);
        }
        by.reach.check_target(&before)?;
        if before.active
            && before.has_role(ADMIN_ROLE)
            && Self::other_active_admins(tx, before.id).await? == 0
        {
            return Err(UserError::LastAdmin(before.username.clone()));
        }
        tx.execute(
            "DELETE FROM ab_user_role WHERE user_id = ?",
            &[before.id.into()],
        )
        .await?;
        tx.execute("DELETE FROM ab_user WHERE id = ?", &[before.id.into()])
            .await?;
        Ok(before)
    }

    /// Users with `id > after`, oldest first, at most `limit`.
    pub async fn created_after(
        tx: &mut WriteTx,
        after: i64,
        limit: i64,
    ) -> Result<Vec<User>, UserError> {
        let d = tx.dialect();
        let rows = tx
            .fetch(
                &format!(
                    "SELECT {} FROM ab_user u WHERE u.id > ? ORDER BY u.id LIMIT ?",
                    user_columns(d)
                ),
                &[after.into(), limit.into()],
            )
            .await
            .map_err(no_fab)?;
        let mut users = users_from(&rows);
        Self::load_roles(tx, &mut users).await?;
        Ok(users)
    }

    /// Ids of users created in the last `secs` seconds (by `created_on`,
    /// which FAB writes as naive local time: UTC on MWAA and in containers).
    pub async fn created_within(
        tx: &mut WriteTx,
        secs: u64,
        up_to_id: i64,
    ) -> Result<Vec<i64>, UserError> {
        let since = match tx.dialect() {
            Dialect::Postgres => {
                "LOCALTIMESTAMP - make_interval(secs => CAST(? AS double precision))".to_owned()
            }
            Dialect::MySql => "UTC_TIMESTAMP(6) - INTERVAL ? SECOND".to_owned(),
            Dialect::Sqlite => {
                "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ? || ' seconds')".to_owned()
            }
        };
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        let rows = tx
            .fetch(
                &format!(
                    "SELECT id FROM ab_user WHERE created_on >= {since} AND id <= ? ORDER BY id"
                ),
                &[secs.into(), up_to_id.into()],
            )
            .await
            .map_err(no_fab)?;
        Ok(rows.rows.iter().filter_map(|r| int(&r[0])).collect())
    }

    /// The highest user id (0 without users).
    pub async fn max_id(tx: &mut WriteTx) -> Result<i64, UserError> {
        Ok(tx
            .scalar("SELECT MAX(id) FROM ab_user", &[])
            .await
            .map_err(no_fab)?
            .unwrap_or(0))
    }

    /// Users matching `username` by FAB's case-insensitive rule, with roles.
    async fn login_candidates(tx: &mut WriteTx, username: &str) -> Result<Vec<User>, UserError> {
        let d = tx.dialect();
        let rows = tx
            .fetch(
                &format!(
                    "SELECT {} FROM ab_user u WHERE lower(u.username) = lower(?)",
                    user_columns(d)
                ),
                &[username.into()],
            )
            .await
            .map_err(no_fab)?;
        let mut users = users_from(&rows);
        if users.len() == 1 {
            Self::load_roles(tx, &mut users).await?;
        }
        Ok(users)
    }

    /// Checks basic-auth credentials the way FAB does: an active user found
    /// by FAB's case-insensitive rule (ambiguity fails), whose stored hash
    /// verifies. Returns the user, or `None`.
    pub async fn authenticate(
        &self,
        username: &str,
        pw: &str,
        method: Method,
    ) -> Result<Option<User>, UserError> {
        let mut tx = self.db.begin().await?;
        let res = Self::login_candidates(&mut tx, username).await;
        let mut users = end(tx, res, false).await?;
        let (user, stored) = if users.len() == 1 && users[0].active {
            let user = users.remove(0);
            let stored = user.password_hash.clone().unwrap_or_default();
            (Some(user), stored)
        } else {
            // Check against a dummy hash of the same method, so the answer
            // takes as long whether or not the user exists.
            (None, dummy_hash(method).to_owned())
        };
        let pw = pw.to_owned();
        let ok = check_password(stored, pw, method).await;
        Ok(user.filter(|_| ok))
    }
}

/// Who makes a change: the `ab_user.id` of a basic-auth caller (for
/// `changed_by_fk` and the self-delete check) and how far its roles reach.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The caller's own user, if it is one.
    pub user_id: Option<i64>,
    /// What it may touch.
    pub reach: Reach,
}

impl Actor {
    /// An actor that reaches everything and is no user (the interception
    /// rules, tests).
    pub fn system() -> Actor {
        Actor {
            user_id: None,
            reach: Reach::All,
        }
    }
}

/// Runs `attempt` again (up to [`ATTEMPTS`] times, after a short random
/// pause) while the database aborts it for a concurrent transaction.
async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> Result<T, UserError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, UserError>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(UserError::Db(DbError::Conflict(msg))) if n < ATTEMPTS => {
                tracing::info!(attempt = n, error = %msg, "Admin change aborted by a concurrent one; retrying.");
                let pause = rand::random::<u64>() % 50 + 10 * u64::from(n);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                n += 1;
            }
            other => return other,
        }
    }
}

/// Password checks at once, at most: each is deliberately expensive
/// (pbkdf2 260k rounds, scrypt 32 MiB), so they run on the blocking pool
/// and never more than this many together.
const MAX_HASHING: usize = 2;

async fn check_password(stored: String, pw: String, method: Method) -> bool {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    let permits = PERMITS.get_or_init(|| tokio::sync::Semaphore::new(MAX_HASHING));
    let Ok(_permit) = permits.acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || match password::verify(&stored, &pw) {
        Ok(ok) => ok,
        // NULL (LDAP/OAuth users), a foreign format: as costly as a wrong
        // password, so the answer's timing does not tell such users apart.
        Err(_) => {
            let _ = password::verify(dummy_hash(method), &pw);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password in `method`, made once per method.
fn dummy_hash(method: Method) -> &'static str {
    static V2: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static V3: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let cell = if method == Method::AIRFLOW_2 {
        &V2
    } else {
        &V3
    };
    cell.get_or_init(|| {
        let random: String = (0..24)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect();
        password::generate(method, &random)
    })
}

/// Ends a transaction: commits when `res` is Ok and `commit` is set,
/// otherwise rolls back (explicitly, so no connection goes back to the pool
/// with a transaction still open).
pub async fn end<T>(tx: WriteTx, res: Result<T, UserError>, commit: bool) -> Result<T, UserError> {
    match res {
        Ok(v) if commit => {
            tx.commit().await?;
            Ok(v)
        }
        other => {
            let _ = tx.rollback().await;
            other
        }
    }
}

/// A missing `ab_user` table becomes [`UserError::NoFabTables`].
fn no_fab(e: DbError) -> UserError {
    let msg = e.to_string().to_ascii_lowercase();
    let missing = msg.contains("ab_user")
        && (msg.contains("does not exist")
            || msg.contains("no such table")
            || msg.contains("doesn't exist"));
    if missing {
        UserError::NoFabTables
    } else {
        UserError::Db(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_roles_reach_those_below() {
        let of = |r: &[&str]| Reach::of(&r.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(of(&["Viewer", "Admin"]), Reach::All);
        let op = of(&["Op"]);
        assert!(op.holds("User") && op.holds("Viewer") && op.holds("Public"));
        assert!(!op.holds("Admin"));
        let custom = of(&["DataTeam", "Viewer"]);
        assert!(custom.holds("DataTeam") && custom.holds("Public"));
        assert!(!custom.holds("User") && !custom.holds("Op"));
        assert_eq!(of(&[]), Reach::Within(vec![]));
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escape("a_b%c!d"), "a!_b!%c!!d");
        assert_eq!(like_escape("domain/alice"), "domain/alice");
    }

    #[test]
    fn update_mask_keeps_only_named_fields() {
        let p = UserPatch {
            username: Some("taken".into()),
            first_name: Some("Ada".into()),
            ..UserPatch::default()
        };
        let m = p.clone().masked(&["first_name".into()]).unwrap();
        assert_eq!(m.username, None);
        assert_eq!(m.first_name.as_deref(), Some("Ada"));
        assert!(matches!(
            p.clone().masked(&["email".into()]),
            Err(UserError::Invalid { .. })
        ));
        assert!(matches!(
            p.masked(&["nope".into()]),
            Err(UserError::Invalid { .. })
        ));
    }

    #[test]
    fn text_fields_are_checked() {
        assert!(check_text("username", "domain/alice").is_ok());
        assert!(check_text("username", "élise").is_ok());
        assert!(check_text("username", " ").is_err());
        assert!(check_text("username", "a\nb").is_err());
        assert!(check_text("username", &"x".repeat(257)).is_err());
    }
}
