//! A PostgreSQL server for tests (this crate's and the integration suites'), named by
//! WASMFLOW_TEST_POSTGRES_URI (scripts/test.sh starts a throwaway one). Not for production use.

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

pub fn execute(uri: &str, sql: &str) {
    with_client(uri, async |c| c.batch_execute(sql).await.unwrap());
}

pub fn query_i64(uri: &str, sql: &str) -> i64 {
    with_client(uri, async |c| c.query_one(sql, &[]).await.unwrap().get(0))
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
