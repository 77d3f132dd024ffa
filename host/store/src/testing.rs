//! Databases for tests (this crate's, the server's and the integration suites'): a PostgreSQL
//! server named by WASMFLOW_TEST_POSTGRES_URI (scripts/test.sh starts a throwaway one), SQL run
//! on either backend, and a database at an older schema. Not for production use.

/// A new, empty database on the test server (a unique name, so tests and parallel test
/// processes never share one), as a uri; `None` when no server is configured.
pub fn fresh_database() -> Option<String> {
    let admin = std::env::var("WASMFLOW_TEST_POSTGRES_URI")
        .ok()
        .filter(|u| !u.is_empty())?;
    // The name is made here of hex digits only: safe to put in the statement (a database
    // name cannot be a bound parameter).
    let name = format!("wasmflow_test_{}", uuid::Uuid::new_v4().simple());
    execute(&admin, &format!("CREATE DATABASE {name}"));
    Some(with_database(&admin, &name))
}

/// `uri` with its database replaced by `name`.
fn with_database(uri: &str, name: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("a uri");
    let (authority, query) = match rest.find(['/', '?']) {
        Some(i) => {
            let tail = &rest[i..];
            let query = tail.find('?').map_or("", |q| &tail[q..]);
            (&rest[..i], query)
        }
        None => (rest, ""),
    };
    format!("{scheme}://{authority}/{name}{query}")
}

fn with_client<T>(uri: &str, f: impl AsyncFnOnce(&tokio_postgres::Client) -> T) -> T {
    let config = crate::postgres::parse_uri(uri).unwrap().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        let driver = tokio::spawn(connection);
        let out = f(&client).await;
        drop(client);
        let _ = driver.await;
        out
    })
}

/// A connection of its own to the SQLite database `uri` names, or `None` for a PostgreSQL one.
fn sqlite(uri: &str) -> Option<rusqlite::Connection> {
    uri.starts_with("sqlite:")
        .then(|| rusqlite::Connection::open(crate::store_path(uri).unwrap()).unwrap())
}

/// Runs SQL statements on the database `uri` names (either backend).
pub fn execute(uri: &str, sql: &str) {
    match sqlite(uri) {
        Some(conn) => conn.execute_batch(sql).unwrap(),
        None => with_client(uri, async |c| c.batch_execute(sql).await.unwrap()),
    }
}

/// The one number the database `uri` names (either backend) answers `sql` with.
pub fn query_i64(uri: &str, sql: &str) -> i64 {
    match sqlite(uri) {
        Some(conn) => conn.query_row(sql, [], |r| r.get(0)).unwrap(),
        None => with_client(uri, async |c| c.query_one(sql, &[]).await.unwrap().get(0)),
    }
}

/// The first column of each row the database `uri` names (either backend) answers `sql` with,
/// as text (NULL as `None`).
pub fn query_texts(uri: &str, sql: &str) -> Vec<Option<String>> {
    match sqlite(uri) {
        Some(conn) => conn
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap(),
        None => with_client(uri, async |c| {
            c.query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect()
        }),
    }
}

/// Drops a database [`fresh_database`] made, closing the connections still open to it.
pub fn drop_database(uri: &str) {
    let Some(admin) = std::env::var("WASMFLOW_TEST_POSTGRES_URI")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return;
    };
    let config = crate::postgres::parse_uri(uri).unwrap().unwrap();
    let name = config.get_dbname().expect("a database name");
    // Only names fresh_database makes (hex digits: safe to put in the statement).
    let hex = name.strip_prefix("wasmflow_test_").unwrap_or_default();
    assert!(
        !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "not a test database: '{name}'"
    );
    execute(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

/// A database at schema `n` (its first `n` migrations), as an older wasmflow left it.
pub fn at_version(uri: &str, n: usize) {
    if let Some(conn) = sqlite(uri) {
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for sql in &crate::sqlite::MIGRATIONS[..n] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", n).unwrap();
    } else {
        let mut sql = String::from(
            "CREATE TABLE wasmflow_schema_version (
                 version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);\n",
        );
        for (i, m) in crate::postgres::MIGRATIONS[..n].iter().enumerate() {
            sql.push_str(m);
            sql.push_str(&format!(
                ";\nINSERT INTO wasmflow_schema_version VALUES ({}, 0);\n",
                i + 1
            ));
        }
        execute(uri, &sql);
    }
}
