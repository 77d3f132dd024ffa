//! Users and permission grants of the basic-auth app, kept in the tracking store's database.
//! The store keeps what it is given: hashing passwords and folding grants into a decision are
//! the server's (`wasmflow-server`'s `auth` module).

use wasmflow_core::{Error, ErrorCode, Result};

use crate::columns::Columns;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// An argon2id PHC string; never sent to clients.
    pub password_hash: String,
    pub is_admin: bool,
}

/// One permission of a user on a resource (`resource_id` `*`: every resource of the type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub resource_type: String,
    pub resource_id: String,
    pub permission: String,
}

pub trait AuthStore: Send + Sync {
    /// Fails with RESOURCE_ALREADY_EXISTS when the name is taken.
    fn create_user(&self, username: &str, password_hash: &str, is_admin: bool) -> Result<User>;
    fn find_user(&self, username: &str) -> Result<Option<User>>;
    /// Fails with RESOURCE_DOES_NOT_EXIST, in MLflow's words.
    fn get_user(&self, username: &str) -> Result<User> {
        self.find_user(username)?
            .ok_or_else(|| user_not_found(username))
    }
    fn list_users(&self) -> Result<Vec<User>>;
    fn update_user(
        &self,
        username: &str,
        password_hash: Option<&str>,
        is_admin: Option<bool>,
    ) -> Result<()>;
    /// Deletes the user and their grants.
    fn delete_user(&self, username: &str) -> Result<()>;

    /// Adds a grant; RESOURCE_ALREADY_EXISTS when the user already has one on the resource.
    fn grant(&self, username: &str, grant: &Grant) -> Result<()>;
    /// Adds or replaces a grant (the creator's MANAGE).
    fn set_grant(&self, user_id: i64, grant: &Grant) -> Result<()>;
    /// RESOURCE_DOES_NOT_EXIST when there is no such grant.
    fn revoke(&self, username: &str, resource_type: &str, resource_id: &str) -> Result<()>;
    /// Every grant of the user on resources of the type.
    fn grants(&self, user_id: i64, resource_type: &str) -> Result<Vec<Grant>>;
    /// Every grant of the user.
    fn all_grants(&self, user_id: i64) -> Result<Vec<Grant>>;
    /// Moves the grants on a renamed resource to its new name.
    fn rename_grants(&self, resource_type: &str, old_id: &str, new_id: &str) -> Result<()>;
    /// Drops the grants on a deleted resource, so a later one of the same name inherits none.
    fn delete_grants(&self, resource_type: &str, resource_id: &str) -> Result<()>;
}

// ---- what both backends share: columns, rows and MLflow's messages ----

pub(crate) const USER_COLUMNS: &str = "id, username, password_hash, is_admin";
pub(crate) const GRANT_COLUMNS: &str = "resource_type, resource_id, permission";

/// A user from the row of [`USER_COLUMNS`].
pub(crate) fn user_from<R: Columns>(r: &R) -> std::result::Result<User, R::Error> {
    Ok(User {
        id: r.int(0)?,
        username: r.text(1)?,
        password_hash: r.text(2)?,
        is_admin: r.flag(3)?,
    })
}

/// A grant from the row of [`GRANT_COLUMNS`].
pub(crate) fn grant_from<R: Columns>(r: &R) -> std::result::Result<Grant, R::Error> {
    Ok(Grant {
        resource_type: r.text(0)?,
        resource_id: r.text(1)?,
        permission: r.text(2)?,
    })
}

pub(crate) fn user_not_found(username: &str) -> Error {
    Error::new(
        ErrorCode::ResourceDoesNotExist,
        format!("User with username={username} not found"),
    )
}

pub(crate) fn user_exists(username: &str) -> Error {
    Error::new(
        ErrorCode::ResourceAlreadyExists,
        format!("User (username={username}) already exists."),
    )
}

pub(crate) fn grant_exists(username: &str, grant: &Grant) -> Error {
    Error::new(
        ErrorCode::ResourceAlreadyExists,
        format!(
            "Permission for user={username} on resource_type={}, resource_id={} already exists.",
            grant.resource_type, grant.resource_id
        ),
    )
}

pub(crate) fn grant_not_found(username: &str, resource_type: &str, resource_id: &str) -> Error {
    Error::new(
        ErrorCode::ResourceDoesNotExist,
        format!(
            "Permission for user={username} on resource_type={resource_type}, \
             resource_id={resource_id} not found."
        ),
    )
}
