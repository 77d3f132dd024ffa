//! Authentication and permissions compatible with MLflow 3's `basic-auth` app
//! (`mlflow server --app-name basic-auth`): users with argon2id-hashed passwords in the tracking
//! store, HTTP Basic authentication (what `MLFLOW_TRACKING_USERNAME`/`PASSWORD` make the client
//! send), MLflow's auth REST API, and a permission check in front of every endpoint.
//!
//! Off by default; `wasmflow server --app-name basic-auth` (or `--auth`) turns it on.
//! MLflow 3.17's basic-auth accepts Basic credentials only: a bearer token
//! (`MLFLOW_TRACKING_TOKEN`) is answered 401 there and here.

mod api;
mod check;
#[cfg(test)]
mod http_tests;
mod password;
mod permission;
mod rules;

use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::http::HeaderMap;
use base64::Engine as _;
use wasmflow_core::Result;
use wasmflow_store::auth::{AuthStore, Grant, User};
use wasmflow_store::{EvalDatasetStore, Store, TrackingStore};

pub use permission::Permission;
use permission::effective;

/// The `server` options of the auth app.
#[derive(clap::Args, Clone)]
pub struct AuthArgs {
    /// MLflow's server app: `basic-auth` turns on authentication and permissions.
    #[arg(long, value_name = "NAME")]
    pub app_name: Option<String>,
    /// Turn on authentication and permissions (the same as `--app-name basic-auth`).
    #[arg(long)]
    pub auth: bool,
    /// The admin user created at the first start with auth on; its password comes from
    /// WASMFLOW_ADMIN_PASSWORD (or MLflow's MLFLOW_AUTH_ADMIN_PASSWORD), never from a default.
    #[arg(long, env = "WASMFLOW_ADMIN_USERNAME", default_value = "admin")]
    pub admin_username: String,
    /// The permission users have on experiments and registered models they hold no grant on:
    /// READ (MLflow's default), USE, EDIT, MANAGE or NO_PERMISSIONS.
    #[arg(long, env = "WASMFLOW_AUTH_DEFAULT_PERMISSION", default_value = "READ")]
    pub auth_default_permission: String,
}

impl AuthArgs {
    pub fn enabled(&self) -> anyhow::Result<bool> {
        match self.app_name.as_deref() {
            None => Ok(self.auth),
            Some("basic-auth") => Ok(true),
            Some(other) => {
                anyhow::bail!("unknown --app-name '{other}': wasmflow has the app 'basic-auth'")
            }
        }
    }
}

/// The auth app's state: the users and grants, and the stores that say which experiment a run
/// or logged model belongs to.
pub struct Auth {
    users: Arc<dyn AuthStore>,
    tracking: Arc<dyn TrackingStore>,
    /// Where an evaluation dataset's experiments are looked up.
    datasets: Arc<dyn EvalDatasetStore>,
    traces: Arc<dyn wasmflow_store::TraceStore>,
    default_permission: Permission,
    verified: password::VerifiedCache,
}

impl Auth {
    /// Turns auth on over the store, creating the admin user on the first start. Refuses to
    /// start without an admin password when the admin does not exist yet: there is no default.
    pub fn start(args: &AuthArgs, store: Arc<dyn Store>) -> anyhow::Result<Arc<Auth>> {
        let password = ["WASMFLOW_ADMIN_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|p| !p.is_empty()));
        Self::start_with(args, store, password)
    }

    /// `start` with the admin password given rather than read from the environment.
    fn start_with(
        args: &AuthArgs,
        store: Arc<dyn Store>,
        admin_password: Option<String>,
    ) -> anyhow::Result<Arc<Auth>> {
        let default_permission = Permission::parse(&args.auth_default_permission)
            .map_err(|e| anyhow::anyhow!("invalid --auth-default-permission: {}", e.message))?;
        anyhow::ensure!(
            default_permission != Permission::Deny,
            "invalid --auth-default-permission 'DENY': use NO_PERMISSIONS"
        );
        let admin = args.admin_username.trim();
        anyhow::ensure!(!admin.is_empty(), "--admin-username cannot be empty");
        if store.find_user(admin)?.is_none() {
            let password = admin_password.with_context(|| {
                format!(
                    "auth is on and the admin user '{admin}' does not exist yet: set \
                         WASMFLOW_ADMIN_PASSWORD to its password (wasmflow has no default password)"
                )
            })?;
            password::validate(&password)
                .map_err(|e| anyhow::anyhow!("WASMFLOW_ADMIN_PASSWORD: {}", e.message))?;
            store.create_user(admin, &password::hash(&password)?, true)?;
            tracing::info!("created the admin user '{admin}'");
        }
        tracing::info!(
            "authentication on (basic-auth); users have {} where they hold no grant",
            default_permission
        );
        Ok(Arc::new(Auth {
            users: store.clone(),
            datasets: store.clone(),
            tracking: store.clone(),
            traces: store,
            default_permission,
            verified: password::VerifiedCache::new(),
        }))
    }

    /// The user whose Basic credentials the request carries, if they are right.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Option<User>> {
        let Some((username, password)) = basic_credentials(headers) else {
            return Ok(None);
        };
        let Some(user) = self.users.find_user(&username)? else {
            return Ok(None);
        };
        if self.verified.contains(&username, &password) {
            return Ok(Some(user));
        }
        if !password::verify(&password, &user.password_hash) {
            return Ok(None);
        }
        self.verified.insert(&username, &password);
        Ok(Some(user))
    }

    /// The user's permission on one resource (`experiment` id or `registered_model` name).
    fn permission(
        &self,
        user: &User,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Permission> {
        if user.is_admin {
            return Ok(Permission::Manage);
        }
        self.granted(user, resource_type, resource_id)
    }

    /// What the user's grants and the default give on the resource, admin or not (what
    /// `users/permissions/get` reports).
    fn granted(&self, user: &User, resource_type: &str, resource_id: &str) -> Result<Permission> {
        let grants = self.users.grants(user.id, resource_type)?;
        let id = permission::canonical_resource_id(resource_type, resource_id);
        Ok(effective(&grants, &id, self.default_permission))
    }

    /// A predicate for filtering many resources of a type with one read of the grants.
    fn readable(&self, user: &User, resource_type: &str) -> Result<impl Fn(&str) -> bool + use<>> {
        let grants = if user.is_admin {
            None
        } else {
            Some(self.users.grants(user.id, resource_type)?)
        };
        let default = self.default_permission;
        let resource_type = resource_type.to_string();
        Ok(move |id: &str| match &grants {
            None => true,
            Some(grants) => {
                let id = permission::canonical_resource_id(&resource_type, id);
                effective(grants, &id, default).allows(permission::Access::Read)
            }
        })
    }

    fn grant_creator(&self, user: &User, resource_type: &str, resource_id: &str) -> Result<()> {
        self.users.set_grant(
            user.id,
            &Grant {
                resource_type: resource_type.into(),
                resource_id: resource_id.into(),
                permission: Permission::Manage.name().into(),
            },
        )
    }
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let pair = String::from_utf8(raw).ok()?;
    let (user, password) = pair.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The app with the auth API mounted and every request checked; unchanged when auth is off.
pub fn protect(app: Router, auth: Option<Arc<Auth>>) -> Router {
    let Some(auth) = auth else {
        return app;
    };
    app.merge(api::router().with_state(auth.clone()))
        .layer(axum::middleware::from_fn_with_state(auth, check::check))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_credentials_are_read_as_clients_send_them() {
        let mut headers = HeaderMap::new();
        assert_eq!(basic_credentials(&headers), None);
        // "alice:pa:ss" — a password may contain ':'.
        headers.insert(
            "authorization",
            HeaderValue::from_static("Basic YWxpY2U6cGE6c3M="),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("alice".into(), "pa:ss".into()))
        );
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        assert_eq!(basic_credentials(&headers), None);
    }
}
