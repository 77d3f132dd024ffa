//! MLflow's auth REST API, as `mlflow.server.get_app_client("basic-auth", ...)` (the
//! `AuthServiceClient` of MLflow 3.17) calls it: users, and per-user grants on experiments and
//! registered models. Who may call what is in [`super::rules`]; these handlers do the work.

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use wasmflow_core::{Error, ErrorCode};
use wasmflow_store::auth::{Grant, User};

use super::permission::{self, Access, Permission};
use super::{Auth, password};
use crate::error::{ApiError, ApiResult};

pub fn router() -> Router<Arc<Auth>> {
    let mut router = Router::new();
    for api in ["/api", "/ajax-api"] {
        router = router
            .route(&format!("{api}/2.0/mlflow/users/create"), post(create_user))
            .route(&format!("{api}/2.0/mlflow/users/get"), get(get_user))
            .route(
                &format!("{api}/2.0/mlflow/users/current"),
                get(current_user),
            )
            .route(&format!("{api}/2.0/mlflow/users/list"), get(list_users))
            .route(
                &format!("{api}/2.0/mlflow/users/update-password"),
                patch(update_password),
            )
            .route(
                &format!("{api}/2.0/mlflow/users/update-admin"),
                patch(update_admin),
            )
            .route(
                &format!("{api}/2.0/mlflow/users/delete"),
                delete(delete_user),
            )
            .route(
                &format!("{api}/3.0/mlflow/users/permissions/grant"),
                post(grant_permission),
            )
            .route(
                &format!("{api}/3.0/mlflow/users/permissions/revoke"),
                post(revoke_permission),
            )
            .route(
                &format!("{api}/3.0/mlflow/users/permissions/get"),
                get(get_permission),
            );
    }
    router
}

/// The request's fields: the query string with a JSON body's fields over it (the client sends
/// DELETE's fields in the body).
struct Fields(Value);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let (_, fields) = super::check::read_params(&parts.method, parts.uri.query(), body).await?;
        Ok(Fields(fields))
    }
}

impl Fields {
    fn text(&self, name: &str) -> ApiResult<String> {
        match self.0.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(missing(name)),
        }
    }
}

/// MLflow's answer to a request without a field it needs.
fn missing(name: &str) -> ApiError {
    ApiError::invalid(format!(
        "Missing value for required parameter '{name}'. See the API docs for more information \
         about request parameters."
    ))
}

fn user_json(user: &User) -> Value {
    json!({ "id": user.id, "username": user.username, "is_admin": user.is_admin })
}

async fn call<T: Send + 'static>(
    auth: &Arc<Auth>,
    f: impl FnOnce(&Auth) -> wasmflow_core::Result<T> + Send + 'static,
) -> ApiResult<T> {
    super::check::blocking(auth, f).await.map_err(ApiError)
}

async fn create_user(State(auth): State<Arc<Auth>>, req: Request) -> ApiResult<Response> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Ok((
            StatusCode::BAD_REQUEST,
            "Invalid content type. Must be application/json",
        )
            .into_response());
    }
    let fields = Fields::from_request(req, &()).await?;
    let (username, password) = (fields.text("username")?, fields.text("password")?);
    if username.is_empty() || password.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            "Username and password cannot be empty.",
        )
            .into_response());
    }
    password::validate(&password)?;
    let user = call(&auth, move |a| {
        let hash = password::hash(&password)?;
        a.users.create_user(&username, &hash, false)
    })
    .await?;
    Ok(Json(json!({ "user": user_json(&user) })).into_response())
}

async fn get_user(State(auth): State<Arc<Auth>>, fields: Fields) -> ApiResult<Json<Value>> {
    let username = fields.text("username")?;
    let user = call(&auth, move |a| a.users.get_user(&username)).await?;
    Ok(Json(json!({ "user": user_json(&user) })))
}

async fn current_user(Extension(user): Extension<User>) -> Json<Value> {
    Json(json!({ "user": user_json(&user), "is_basic_auth": true }))
}

async fn list_users(State(auth): State<Arc<Auth>>) -> ApiResult<Json<Value>> {
    let users = call(&auth, |a| a.users.list_users()).await?;
    let users: Vec<Value> = users
        .iter()
        .map(|u| {
            let mut v = user_json(u);
            v["roles"] = json!([]);
            v
        })
        .collect();
    Ok(Json(json!({ "users": users })))
}

async fn update_password(
    State(auth): State<Arc<Auth>>,
    Extension(sender): Extension<User>,
    fields: Fields,
) -> ApiResult<Json<Value>> {
    let (username, password) = (fields.text("username")?, fields.text("password")?);
    // Changing one's own password asks for the current one, so a borrowed session cannot.
    let current = if sender.username == username {
        let current = fields
            .text("current_password")
            .ok()
            .filter(|p| !p.is_empty());
        Some(current.ok_or_else(|| {
            ApiError::invalid("Current password is required when changing your own password.")
        })?)
    } else {
        None
    };
    password::validate(&password)?;
    call(&auth, move |a| {
        let user = a.users.get_user(&username)?;
        if let Some(current) = current {
            if !password::verify(&current, &user.password_hash) {
                return Err(Error::invalid("Current password does not match."));
            }
            if current == password {
                return Err(Error::invalid(
                    "New password must differ from the current password.",
                ));
            }
        }
        a.users
            .update_user(&username, Some(&password::hash(&password)?), None)?;
        a.verified.forget(&username);
        Ok(())
    })
    .await?;
    Ok(Json(json!({})))
}

async fn update_admin(State(auth): State<Arc<Auth>>, fields: Fields) -> ApiResult<Json<Value>> {
    let username = fields.text("username")?;
    let is_admin = match fields.0.get("is_admin") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "invalid is_admin '{other}': expected true or false"
            )));
        }
        None => return Err(missing("is_admin")),
    };
    call(&auth, move |a| {
        a.users.update_user(&username, None, Some(is_admin))?;
        a.verified.forget(&username);
        Ok(())
    })
    .await?;
    Ok(Json(json!({})))
}

async fn delete_user(
    State(auth): State<Arc<Auth>>,
    Extension(sender): Extension<User>,
    fields: Fields,
) -> ApiResult<Json<Value>> {
    let username = fields.text("username")?;
    if username == sender.username {
        return Err(ApiError(Error::new(
            ErrorCode::BadRequest,
            "Users cannot delete their own account. Ask another admin to delete this user \
             instead.",
        )));
    }
    call(&auth, move |a| {
        a.users.delete_user(&username)?;
        a.verified.forget(&username);
        Ok(())
    })
    .await?;
    Ok(Json(json!({})))
}

/// `username`, `resource_type` and `resource_id` of a grant request, checked.
fn target(fields: &Fields) -> ApiResult<(String, String, String)> {
    let username = fields.text("username")?;
    let resource_type = fields.text("resource_type")?;
    permission::validate_resource_type(&resource_type)?;
    let resource_id =
        permission::canonical_resource_id(&resource_type, &fields.text("resource_id")?);
    Ok((username, resource_type, resource_id))
}

async fn grant_permission(State(auth): State<Arc<Auth>>, fields: Fields) -> ApiResult<Json<Value>> {
    let (username, resource_type, resource_id) = target(&fields)?;
    let permission = Permission::parse_grantable(&fields.text("permission")?, &resource_type)?;
    call(&auth, move |a| {
        a.users.get_user(&username)?;
        a.users.grant(
            &username,
            &Grant {
                resource_type,
                resource_id,
                permission: permission.name().into(),
            },
        )
    })
    .await?;
    Ok(Json(json!({})))
}

async fn revoke_permission(
    State(auth): State<Arc<Auth>>,
    fields: Fields,
) -> ApiResult<Json<Value>> {
    let (username, resource_type, resource_id) = target(&fields)?;
    call(&auth, move |a| {
        a.users.get_user(&username)?;
        a.users.revoke(&username, &resource_type, &resource_id)
    })
    .await?;
    Ok(Json(json!({})))
}

/// The effective permission, as the runtime check resolves it; `allowed` is MLflow's `can_use`.
async fn get_permission(State(auth): State<Arc<Auth>>, fields: Fields) -> ApiResult<Json<Value>> {
    let (username, resource_type, resource_id) = target(&fields)?;
    let permission = call(&auth, move |a| {
        let user = a.users.get_user(&username)?;
        a.granted(&user, &resource_type, &resource_id)
    })
    .await?;
    Ok(Json(json!({
        "allowed": permission.allows(Access::Use),
        "permission": permission.name(),
    })))
}
