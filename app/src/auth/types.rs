//! Who may do what: roles, permissions, subtree grants, and the [`Actor`] every service call requires. Holding an
//! `Actor` is the only way to reach a service, and it only comes from an authenticated request (a session or an
//! API token), so authorization is one mechanism rather than checks sprinkled over handlers.

use serde::{Deserialize, Serialize};

use crate::error::{AppError, ErrorKind};

/// A user's role; each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum Role {
    Viewer,
    Operator,
    Engineer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Engineer, Role::Operator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Engineer => "engineer",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Result<Role, AppError> {
        Role::ALL.into_iter().find(|role| role.as_str() == text).ok_or_else(|| {
            AppError::bad_request(format!(
                "unknown role {text:?}; use admin, engineer, operator or viewer"
            ))
        })
    }

    /// The one table from role to permission.
    pub fn allows(self, permission: Permission) -> bool {
        let needed = match permission {
            Permission::View | Permission::ManageOwnAccount => Role::Viewer,
            Permission::Operate => Role::Operator,
            Permission::EditModel => Role::Engineer,
            Permission::Administer => Role::Admin,
        };
        self >= needed
    }
}

/// What an action needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read the model, trends, alarms and reports (within one's grants).
    View,
    /// Change one's own password and API tokens.
    ManageOwnAccount,
    /// Acknowledge, shelve and comment on alarms.
    Operate,
    /// Edit templates, assets, devices and rules.
    EditModel,
    /// Manage users, roles, grants and others' tokens; read the audit log.
    Administer,
}

/// Which assets a user may see: everything, or only the subtrees under the granted assets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    Everything,
    Subtrees(Vec<i64>),
}

impl Scope {
    /// The whole plant only when said so; otherwise the granted subtrees, and no grants at all is nothing (so
    /// removing a user's last grant never widens their access).
    pub fn of(whole_plant: bool, grants: &[i64]) -> Scope {
        if whole_plant {
            Scope::Everything
        } else {
            Scope::Subtrees(grants.to_vec())
        }
    }

    /// Whether an asset whose ancestors-and-self ids are `lineage` lies inside the scope.
    pub fn includes(&self, lineage: &[i64]) -> bool {
        self.hidden_depth(lineage) < lineage.len()
    }

    /// How many of the leading assets of `lineage` (ancestors and self, root first) lie outside the scope: the
    /// ancestors above the caller's topmost grant, whose names the caller is not shown.
    pub fn hidden_depth(&self, lineage: &[i64]) -> usize {
        match self {
            Scope::Everything => 0,
            Scope::Subtrees(roots) => lineage
                .iter()
                .position(|id| roots.contains(id))
                .unwrap_or(lineage.len()),
        }
    }

    /// `path` (the full path of the asset whose ancestors-and-self ids are `lineage`) as the caller is shown it:
    /// each ancestor outside the scope becomes [`HIDDEN_ANCESTOR`], so `/North Plant/Line 2/Pump 7` reads
    /// `/…/Line 2/Pump 7` for a user granted only Line 2. The same text resolves back to the asset for them.
    pub fn shown_path(&self, lineage: &[i64], path: &str) -> String {
        let hidden = self.hidden_depth(lineage);
        if hidden == 0 {
            return path.to_string();
        }
        path.split('/')
            .skip(1)
            .enumerate()
            .map(|(depth, name)| {
                if depth < hidden {
                    format!("/{HIDDEN_ANCESTOR}")
                } else {
                    format!("/{name}")
                }
            })
            .collect()
    }
}

/// What an asset path shows in place of an ancestor outside the caller's grants (asset names may not be it).
pub const HIDDEN_ANCESTOR: &str = "…";

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub enum AuthMethod {
    Session,
    ApiToken,
    /// The command line on the server itself (`gantry user create`, …).
    Cli,
}

/// An authenticated caller. Services take `&Actor`; handlers get one only from the identity middleware.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub scope: Scope,
    pub method: AuthMethod,
    /// The client's address, for the audit log.
    pub source: Option<String>,
}

impl Actor {
    /// The command line on the server itself: an administrator of the whole plant (`gantry model import`, …).
    pub fn command_line() -> Actor {
        Actor {
            user_id: 0,
            username: "cli".into(),
            role: Role::Admin,
            scope: Scope::Everything,
            method: AuthMethod::Cli,
            source: Some("command line".into()),
        }
    }

    /// Ok when the role allows `permission`; a 403 that says what is missing otherwise.
    pub fn require(&self, permission: Permission) -> Result<(), AppError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorKind::Forbidden,
                format!(
                    "your role ({}) does not allow this; it needs {}",
                    self.role.as_str(),
                    match permission {
                        Permission::View | Permission::ManageOwnAccount => "an account",
                        Permission::Operate => "the operator role or higher",
                        Permission::EditModel => "the engineer role or higher",
                        Permission::Administer => "the admin role",
                    }
                ),
            ))
        }
    }

    /// Ok when the caller's grants cover the whole plant. Templates (with their alarm rules) and model files
    /// reach assets anywhere in the tree, so changing them needs it: a grant limited to a subtree would otherwise
    /// reach outside itself.
    pub fn require_whole_plant(&self, what: &str) -> Result<(), AppError> {
        match self.scope {
            Scope::Everything => Ok(()),
            Scope::Subtrees(_) => Err(AppError::new(
                ErrorKind::Forbidden,
                format!("{what} affects assets anywhere in the plant; your grants cover only part of it"),
            )),
        }
    }
}

/// A user as lists and forms show it (never the password hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub enabled: bool,
    /// Whether the user sees the whole plant (then `grants` is empty).
    pub whole_plant: bool,
    /// Asset ids whose subtrees the user may see, when not the whole plant; none means nothing.
    pub grants: Vec<i64>,
    pub created_at_ms: i64,
    pub last_login_at_ms: Option<i64>,
    /// The IANA time zone the user reads times in (`Europe/Berlin`); none: the browser's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// The time zone one reads times in: an IANA name (`America/New_York`), or none for the browser's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TimeZoneChange {
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub grants: Vec<i64>,
    /// The whole plant instead of grants; unset means "the whole plant when no grants are given".
    #[serde(default)]
    pub whole_plant: Option<bool>,
}

/// A partial update: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub enabled: Option<bool>,
    /// New grants; an empty list leaves the user with access to nothing (not the whole plant).
    pub grants: Option<Vec<i64>>,
    /// True gives the whole plant (and drops the grants); false keeps only the grants.
    pub whole_plant: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PasswordReset {
    pub new_password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NewToken {
    pub name: String,
    /// Milliseconds since the epoch; none means the token does not expire.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

/// An API token as lists show it: never the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

/// A token just created: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct CreatedToken {
    pub token: TokenView,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: Option<String>,
    pub source: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    /// `{ "field": { "from": …, "to": … } }`; secrets appear as `"[REDACTED]"`.
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub diff: leptos::serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Entries with a smaller id (for paging back).
    pub before_id: Option<i64>,
    pub limit: Option<u32>,
}

/// The first admin, created through the one-time setup page while no user exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SetupRequest {
    pub setup_token: String,
    pub username: String,
    pub display_name: String,
    pub password: String,
}

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Usernames: 1–64 of letters, digits, `.`, `_`, `-` and `@`, so they are safe in paths, logs and audit lines.
pub fn validate_username(name: &str) -> Result<(), AppError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.chars().count() > 64 || !name.chars().all(ok_char) {
        return Err(
            AppError::bad_request("a username is 1 to 64 letters, digits, '.', '_', '-' or '@'").for_field("username"),
        );
    }
    Ok(())
}

/// Display names: any text up to 128 characters, without control or bidirectional-override characters.
pub fn validate_display_name(name: &str) -> Result<(), AppError> {
    let bad = |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if name.trim().is_empty() || name.chars().count() > 128 || name.chars().any(bad) {
        return Err(AppError::bad_request(
            "a display name is 1 to 128 characters without control or bidirectional-override characters",
        )
        .for_field("display_name"));
    }
    Ok(())
}

/// Passwords: at least 12 characters (OWASP ASVS 2.1.1 asks for 12), at most 1024 (hashing cost stays bounded).
pub fn validate_password(password: &str) -> Result<(), AppError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(AppError::bad_request(format!(
            "a password is {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long"
        ))
        .for_field("password"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_hide_the_ancestors_above_the_topmost_grant() {
        let path = "/North/Line 2/Pump 7";
        let lineage = [1, 2, 3];
        assert_eq!(Scope::Everything.shown_path(&lineage, path), path);
        assert_eq!(Scope::Subtrees(vec![2]).shown_path(&lineage, path), "/…/Line 2/Pump 7");
        assert_eq!(
            Scope::Subtrees(vec![3, 2]).shown_path(&lineage, path),
            "/…/Line 2/Pump 7"
        );
        assert_eq!(Scope::Subtrees(vec![1, 3]).shown_path(&lineage, path), path);
        assert_eq!(Scope::Subtrees(vec![3]).shown_path(&lineage, path), "/…/…/Pump 7");
        assert!(!Scope::Subtrees(vec![9]).includes(&lineage));
        assert!(Scope::Subtrees(vec![3]).includes(&lineage));
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin.allows(Permission::Administer));
        assert!(!Role::Engineer.allows(Permission::Administer));
        assert!(Role::Engineer.allows(Permission::EditModel));
        assert!(!Role::Operator.allows(Permission::EditModel));
        assert!(Role::Operator.allows(Permission::Operate));
        assert!(!Role::Viewer.allows(Permission::Operate));
        assert!(Role::Viewer.allows(Permission::View));
        assert!(Role::Viewer.allows(Permission::ManageOwnAccount));
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert_eq!(Role::parse("root").unwrap_err().code, ErrorKind::BadRequest);
    }

    #[test]
    fn scopes_cover_granted_subtrees() {
        assert!(Scope::of(true, &[]).includes(&[1, 2, 3]));
        assert!(!Scope::of(false, &[]).includes(&[1, 2, 3]), "no grants is nothing");
        let scope = Scope::of(false, &[2]);
        assert!(scope.includes(&[1, 2, 3]), "a descendant of a granted asset");
        assert!(scope.includes(&[1, 2]), "the granted asset itself");
        assert!(!scope.includes(&[1]), "an ancestor");
        assert!(!scope.includes(&[1, 4, 5]), "a sibling subtree");
    }

    #[test]
    fn names_and_passwords_are_validated() {
        assert!(validate_username("ops.anna-2@plant").is_ok());
        for bad in ["", "a b", "x/y", "<script>", &"a".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert!(validate_display_name("Anna Müller 操作员").is_ok());
        for bad in ["", "  ", "a\u{202E}b", "tab\there", &"n".repeat(129)] {
            assert!(validate_display_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_password("correct horse battery").is_ok());
        assert!(validate_password("short").is_err());
    }
}
