//! The basic-auth app's users and grants in SQLite ([`AuthStore`]).

use rusqlite::{Connection, OptionalExtension, params};
use wasmflow_core::Result;

use super::{SqliteStore, sql_err};
use crate::auth::{
    AuthStore, GRANT_COLUMNS, Grant, USER_COLUMNS, User, grant_exists, grant_from, grant_not_found,
    user_exists, user_from, user_not_found,
};

fn user_id(conn: &Connection, username: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM users WHERE username = ?1",
        [username],
        |r| r.get(0),
    )
    .optional()
    .map_err(sql_err)?
    .ok_or_else(|| user_not_found(username))
}

impl AuthStore for SqliteStore {
    fn create_user(&self, username: &str, password_hash: &str, is_admin: bool) -> Result<User> {
        let (username, password_hash) = (username.to_string(), password_hash.to_string());
        self.write(move |conn| {
            let taken: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE username = ?1)",
                    [&username],
                    |r| r.get(0),
                )
                .map_err(sql_err)?;
            if taken {
                return Err(user_exists(&username));
            }
            conn.execute(
                "INSERT INTO users (username, password_hash, is_admin) VALUES (?1, ?2, ?3)",
                params![username, password_hash, is_admin],
            )
            .map_err(sql_err)?;
            Ok(User {
                id: conn.last_insert_rowid(),
                username,
                password_hash,
                is_admin,
            })
        })
    }

    fn find_user(&self, username: &str) -> Result<Option<User>> {
        self.read(|conn| {
            conn.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                [username],
                |r| user_from(r),
            )
            .optional()
            .map_err(sql_err)
        })
    }

    fn list_users(&self) -> Result<Vec<User>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
                .map_err(sql_err)?;
            stmt.query_map([], |r| user_from(r))
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)
        })
    }

    fn update_user(
        &self,
        username: &str,
        password_hash: Option<&str>,
        is_admin: Option<bool>,
    ) -> Result<()> {
        let username = username.to_string();
        let password_hash = password_hash.map(str::to_string);
        self.write(move |conn| {
            let id = user_id(conn, &username)?;
            if let Some(hash) = password_hash {
                conn.execute(
                    "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                    params![id, hash],
                )
                .map_err(sql_err)?;
            }
            if let Some(is_admin) = is_admin {
                conn.execute(
                    "UPDATE users SET is_admin = ?2 WHERE id = ?1",
                    params![id, is_admin],
                )
                .map_err(sql_err)?;
            }
            Ok(())
        })
    }

    fn delete_user(&self, username: &str) -> Result<()> {
        let username = username.to_string();
        self.write(move |conn| {
            let id = user_id(conn, &username)?;
            conn.execute("DELETE FROM user_permissions WHERE user_id = ?1", [id])
                .map_err(sql_err)?;
            conn.execute("DELETE FROM users WHERE id = ?1", [id])
                .map_err(sql_err)?;
            Ok(())
        })
    }

    fn grant(&self, username: &str, grant: &Grant) -> Result<()> {
        let (username, grant) = (username.to_string(), grant.clone());
        self.write(move |conn| {
            let id = user_id(conn, &username)?;
            let inserted = conn
                .execute(
                    "INSERT OR IGNORE INTO user_permissions
                         (user_id, resource_type, resource_id, permission)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id, grant.resource_type, grant.resource_id, grant.permission],
                )
                .map_err(sql_err)?;
            if inserted == 0 {
                return Err(grant_exists(&username, &grant));
            }
            Ok(())
        })
    }

    fn set_grant(&self, user_id: i64, grant: &Grant) -> Result<()> {
        let grant = grant.clone();
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO user_permissions (user_id, resource_type, resource_id, permission)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id, resource_type, resource_id)
                 DO UPDATE SET permission = excluded.permission",
                params![
                    user_id,
                    grant.resource_type,
                    grant.resource_id,
                    grant.permission
                ],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }

    fn revoke(&self, username: &str, resource_type: &str, resource_id: &str) -> Result<()> {
        let (username, resource_type, resource_id) = (
            username.to_string(),
            resource_type.to_string(),
            resource_id.to_string(),
        );
        self.write(move |conn| {
            let id = user_id(conn, &username)?;
            let deleted = conn
                .execute(
                    "DELETE FROM user_permissions
                     WHERE user_id = ?1 AND resource_type = ?2 AND resource_id = ?3",
                    params![id, resource_type, resource_id],
                )
                .map_err(sql_err)?;
            if deleted == 0 {
                return Err(grant_not_found(&username, &resource_type, &resource_id));
            }
            Ok(())
        })
    }

    fn grants(&self, user_id: i64, resource_type: &str) -> Result<Vec<Grant>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {GRANT_COLUMNS} FROM user_permissions
                     WHERE user_id = ?1 AND resource_type = ?2"
                ))
                .map_err(sql_err)?;
            stmt.query_map(params![user_id, resource_type], |r| grant_from(r))
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)
        })
    }

    fn all_grants(&self, user_id: i64) -> Result<Vec<Grant>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {GRANT_COLUMNS} FROM user_permissions
                     WHERE user_id = ?1 ORDER BY resource_type, resource_id"
                ))
                .map_err(sql_err)?;
            stmt.query_map([user_id], |r| grant_from(r))
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)
        })
    }

    fn rename_grants(&self, resource_type: &str, old_id: &str, new_id: &str) -> Result<()> {
        let (resource_type, old_id, new_id) = (
            resource_type.to_string(),
            old_id.to_string(),
            new_id.to_string(),
        );
        self.write(move |conn| {
            // Where a user holds grants on both names, the moved grant replaces the one on the new
            // name (REPLACE deletes the row the update would collide with).
            conn.execute(
                "UPDATE OR REPLACE user_permissions SET resource_id = ?3
                 WHERE resource_type = ?1 AND resource_id = ?2",
                params![resource_type, old_id, new_id],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }

    fn delete_grants(&self, resource_type: &str, resource_id: &str) -> Result<()> {
        let (resource_type, resource_id) = (resource_type.to_string(), resource_id.to_string());
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM user_permissions WHERE resource_type = ?1 AND resource_id = ?2",
                params![resource_type, resource_id],
            )
            .map_err(sql_err)?;
            Ok(())
        })
    }
}
