-- Users and their permissions for `wasmflow server --app-name basic-auth` (MLflow's basic-auth
-- app). Passwords are stored only as argon2id PHC strings.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0
);

-- One grant of a user on one resource ('experiment' by id, 'registered_model' by name), or on
-- every resource of the type ('*'), as MLflow 3's users/permissions/grant writes them.
CREATE TABLE user_permissions (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    permission TEXT NOT NULL,
    PRIMARY KEY (user_id, resource_type, resource_id)
);
CREATE INDEX user_permissions_resource ON user_permissions (resource_type, resource_id);
