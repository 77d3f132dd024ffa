//! The basic-auth app's users and grants in SQLite ([`AuthStore`]).

use rusqlite::{Connection, OptionalExtension, Row, params};
use wasmflow_core::{Error, ErrorCode, Result};

use super::{SqliteStore, sql_err};
use crate::auth::{AuthStore, Grant, User};

fn user_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        password_hash: row.get(2)?,
        is_admin: row.get(3)?,
    })
}

fn grant_row(row: &Row<'_>) -> rusqlite::Result<Grant> {
    Ok(Grant {
        resource_type: row.get(0)?,
        resource_id: row.get(1)?,
        permission: row.get(2)?,
    })
}

const USER_COLUMNS: &str = "id, username, password_hash, is_admin";

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

fn user_not_found(username: &str) -> Error {
    Error::new(
        ErrorCode::ResourceDoesNotExist,
        format!("User with username={username} not found"),
    )
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
                return Err(Error::new(
                    ErrorCode::ResourceAlreadyExists,
                    format!("User (username={username}) already exists."),
                ));
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
                user_row,
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
            stmt.query_map([], user_row)
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
                return Err(Error::new(
                    ErrorCode::ResourceAlreadyExists,
                    format!(
                        "Permission for user={username} on resource_type={}, resource_id={} \
                         already exists.",
                        grant.resource_type, grant.resource_id
                    ),
                ));
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
                return Err(Error::new(
                    ErrorCode::ResourceDoesNotExist,
                    format!(
                        "Permission for user={username} on resource_type={resource_type}, \
                         resource_id={resource_id} not found."
                    ),
                ));
            }
            Ok(())
        })
    }

    fn grants(&self, user_id: i64, resource_type: &str) -> Result<Vec<Grant>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT resource_type, resource_id, permission FROM user_permissions
                     WHERE user_id = ?1 AND resource_type = ?2",
                )
                .map_err(sql_err)?;
            stmt.query_map(params![user_id, resource_type], grant_row)
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)
        })
    }

    fn all_grants(&self, user_id: i64) -> Result<Vec<Grant>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT resource_type, resource_id, permission FROM user_permissions
                     WHERE user_id = ?1 ORDER BY resource_type, resource_id",
                )
                .map_err(sql_err)?;
            stmt.query_map([user_id], grant_row)
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
            // A grant some user already holds on the new name wins over the moved one.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &dir.path().join("auth.db"),
            StoreConfig {
                default_artifact_root: "./mlruns".into(),
            },
        )
        .unwrap();
        (dir, store)
    }

    fn grant(t: &str, id: &str, p: &str) -> Grant {
        Grant {
            resource_type: t.into(),
            resource_id: id.into(),
            permission: p.into(),
        }
    }

    #[test]
    fn users_round_trip() {
        let (_dir, s) = store();
        let alice = s.create_user("alice", "$argon2id$x", false).unwrap();
        assert_eq!(s.get_user("alice").unwrap(), alice);
        let err = s.create_user("alice", "h", true).unwrap_err();
        assert_eq!(err.code, ErrorCode::ResourceAlreadyExists);
        assert_eq!(
            s.get_user("bob").unwrap_err().message,
            "User with username=bob not found"
        );
        s.update_user("alice", Some("$argon2id$y"), Some(true))
            .unwrap();
        let alice = s.get_user("alice").unwrap();
        assert_eq!(
            (alice.password_hash.as_str(), alice.is_admin),
            ("$argon2id$y", true)
        );
        assert_eq!(s.list_users().unwrap().len(), 1);
        s.delete_user("alice").unwrap();
        assert!(s.find_user("alice").unwrap().is_none());
        assert_eq!(
            s.delete_user("alice").unwrap_err().code,
            ErrorCode::ResourceDoesNotExist
        );
    }

    #[test]
    fn grants_follow_users_and_resources() {
        let (_dir, s) = store();
        let alice = s.create_user("alice", "h", false).unwrap();
        s.grant("alice", &grant("experiment", "1", "READ")).unwrap();
        assert_eq!(
            s.grant("alice", &grant("experiment", "1", "EDIT"))
                .unwrap_err()
                .code,
            ErrorCode::ResourceAlreadyExists
        );
        s.set_grant(alice.id, &grant("experiment", "1", "MANAGE"))
            .unwrap();
        s.set_grant(alice.id, &grant("registered_model", "m", "EDIT"))
            .unwrap();
        assert_eq!(
            s.grants(alice.id, "experiment").unwrap(),
            vec![grant("experiment", "1", "MANAGE")]
        );
        s.rename_grants("registered_model", "m", "m2").unwrap();
        assert_eq!(
            s.grants(alice.id, "registered_model").unwrap(),
            vec![grant("registered_model", "m2", "EDIT")]
        );
        s.delete_grants("registered_model", "m2").unwrap();
        assert!(s.grants(alice.id, "registered_model").unwrap().is_empty());
        s.revoke("alice", "experiment", "1").unwrap();
        assert_eq!(
            s.revoke("alice", "experiment", "1").unwrap_err().message,
            "Permission for user=alice on resource_type=experiment, resource_id=1 not found."
        );
        s.set_grant(alice.id, &grant("experiment", "*", "READ"))
            .unwrap();
        s.delete_user("alice").unwrap();
        let again = s.create_user("alice", "h", false).unwrap();
        assert!(s.all_grants(again.id).unwrap().is_empty());
    }
}
