//! The basic-auth app's users and grants in PostgreSQL ([`AuthStore`]). Uniqueness is the
//! database's to decide (another replica may create the same user or grant at the same moment):
//! a unique violation is answered as RESOURCE_ALREADY_EXISTS, as MLflow does.

use tokio_postgres::Transaction;
use wasmflow_core::Result;

use super::tx::is_unique_violation;
use super::{PgStore, pg_err};
use crate::auth::{
    AuthStore, GRANT_COLUMNS, Grant, USER_COLUMNS, User, grant_exists, grant_from, grant_not_found,
    user_exists, user_from, user_not_found,
};

async fn user_id(tx: &Transaction<'_>, username: &str) -> Result<i64> {
    tx.query_opt("SELECT id FROM users WHERE username = $1", &[&username])
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0))
        .ok_or_else(|| user_not_found(username))
}

async fn grants_where(
    tx: &Transaction<'_>,
    filter: &str,
    user_id: i64,
    resource_type: Option<&str>,
) -> Result<Vec<Grant>> {
    let sql = format!(
        "SELECT {GRANT_COLUMNS} FROM user_permissions WHERE user_id = $1 {filter}
         ORDER BY resource_type, resource_id"
    );
    let rows = match resource_type {
        Some(t) => tx.query(&sql, &[&user_id, &t]).await,
        None => tx.query(&sql, &[&user_id]).await,
    }
    .map_err(pg_err)?;
    rows.iter().map(|r| grant_from(r).map_err(pg_err)).collect()
}

impl AuthStore for PgStore {
    fn create_user(&self, username: &str, password_hash: &str, is_admin: bool) -> Result<User> {
        self.write(async |tx| {
            let row = tx
                .query_one(
                    &format!(
                        "INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, $3)
                         RETURNING {USER_COLUMNS}"
                    ),
                    &[&username, &password_hash, &i64::from(is_admin)],
                )
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        user_exists(username)
                    } else {
                        pg_err(e)
                    }
                })?;
            user_from(&row).map_err(pg_err)
        })
    }

    fn find_user(&self, username: &str) -> Result<Option<User>> {
        self.read(async |tx| {
            tx.query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"),
                &[&username],
            )
            .await
            .map_err(pg_err)?
            .map(|r| user_from(&r).map_err(pg_err))
            .transpose()
        })
    }

    fn list_users(&self) -> Result<Vec<User>> {
        self.read(async |tx| {
            let rows = tx
                .query(
                    &format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"),
                    &[],
                )
                .await
                .map_err(pg_err)?;
            rows.iter().map(|r| user_from(r).map_err(pg_err)).collect()
        })
    }

    fn update_user(
        &self,
        username: &str,
        password_hash: Option<&str>,
        is_admin: Option<bool>,
    ) -> Result<()> {
        self.write(async |tx| {
            let id = user_id(tx, username).await?;
            // Only the fields given change; COALESCE keeps the others.
            tx.execute(
                "UPDATE users SET password_hash = COALESCE($2, password_hash),
                                  is_admin = COALESCE($3, is_admin)
                 WHERE id = $1",
                &[&id, &password_hash, &is_admin.map(i64::from)],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn delete_user(&self, username: &str) -> Result<()> {
        self.write(async |tx| {
            let id = user_id(tx, username).await?;
            // The grants go with the user (ON DELETE CASCADE).
            tx.execute("DELETE FROM users WHERE id = $1", &[&id])
                .await
                .map_err(pg_err)?;
            Ok(())
        })
    }

    fn grant(&self, username: &str, grant: &Grant) -> Result<()> {
        self.write(async |tx| {
            let id = user_id(tx, username).await?;
            let inserted = tx
                .execute(
                    "INSERT INTO user_permissions (user_id, resource_type, resource_id, permission)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        &id,
                        &grant.resource_type,
                        &grant.resource_id,
                        &grant.permission,
                    ],
                )
                .await
                .map_err(pg_err)?;
            if inserted == 0 {
                return Err(grant_exists(username, grant));
            }
            Ok(())
        })
    }

    fn set_grant(&self, user_id: i64, grant: &Grant) -> Result<()> {
        self.write(async |tx| {
            tx.execute(
                "INSERT INTO user_permissions (user_id, resource_type, resource_id, permission)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, resource_type, resource_id)
                 DO UPDATE SET permission = excluded.permission",
                &[
                    &user_id,
                    &grant.resource_type,
                    &grant.resource_id,
                    &grant.permission,
                ],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn revoke(&self, username: &str, resource_type: &str, resource_id: &str) -> Result<()> {
        self.write(async |tx| {
            let id = user_id(tx, username).await?;
            let deleted = tx
                .execute(
                    "DELETE FROM user_permissions
                     WHERE user_id = $1 AND resource_type = $2 AND resource_id = $3",
                    &[&id, &resource_type, &resource_id],
                )
                .await
                .map_err(pg_err)?;
            if deleted == 0 {
                return Err(grant_not_found(username, resource_type, resource_id));
            }
            Ok(())
        })
    }

    fn grants(&self, user_id: i64, resource_type: &str) -> Result<Vec<Grant>> {
        self.read(async |tx| {
            grants_where(tx, "AND resource_type = $2", user_id, Some(resource_type)).await
        })
    }

    fn all_grants(&self, user_id: i64) -> Result<Vec<Grant>> {
        self.read(async |tx| grants_where(tx, "", user_id, None).await)
    }

    fn rename_grants(&self, resource_type: &str, old_id: &str, new_id: &str) -> Result<()> {
        self.write(async |tx| {
            // As SQLite's UPDATE OR REPLACE: where a user holds grants on both names, the moved
            // grant replaces the one on the new name.
            tx.execute(
                "DELETE FROM user_permissions n
                 WHERE n.resource_type = $1 AND n.resource_id = $3 AND $2 <> $3
                   AND EXISTS (SELECT 1 FROM user_permissions o
                               WHERE o.user_id = n.user_id AND o.resource_type = $1
                                 AND o.resource_id = $2)",
                &[&resource_type, &old_id, &new_id],
            )
            .await
            .map_err(pg_err)?;
            tx.execute(
                "UPDATE user_permissions SET resource_id = $3
                 WHERE resource_type = $1 AND resource_id = $2",
                &[&resource_type, &old_id, &new_id],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn delete_grants(&self, resource_type: &str, resource_id: &str) -> Result<()> {
        self.write(async |tx| {
            tx.execute(
                "DELETE FROM user_permissions WHERE resource_type = $1 AND resource_id = $2",
                &[&resource_type, &resource_id],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }
}
