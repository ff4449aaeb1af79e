//! A throwaway PostgreSQL database per test, and the URL surgery the fault tests need to
//! reach one through a [`crate::proxy::Proxy`].

use sqlx::{Connection, PgConnection};

/// A database created for one test and dropped, with its connections, when this is dropped
/// (also when the test panics).
pub struct TestDatabase {
    /// The admin URL with this database's name in it.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates `natter_test_<random hex>` through `admin_url` (a URL of any database the
    /// user may `CREATE DATABASE` from, e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
    pub async fn create(admin_url: &str) -> TestDatabase {
        let name = format!("natter_test_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        TestDatabase {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be single-threaded (and blocking it
        // here is fine): drop the database from a thread with its own runtime.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::query(&sql)
                    .execute(&mut admin)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok::<_, String>(())
            })
        })
        .join();
        // Not a panic: this may run while a failing test unwinds.
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test database {} was not dropped: {e}", self.name),
            Err(_) => eprintln!("test database {} was not dropped", self.name),
        }
    }
}

/// `url` naming database `name` instead of its own; the query string is kept, minus any
/// `dbname=` that would override the path.
pub fn with_database(url: &str, name: &str) -> String {
    let path = authority(url).1;
    let query_start = url[path..].find('?').map_or(url.len(), |i| path + i);
    let query: Vec<&str> = url[query_start..]
        .trim_start_matches('?')
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("dbname="))
        .collect();
    let mut out = format!("{}/{name}", &url[..path]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query.join("&"));
    }
    out
}

/// The `host:port` of `url` (port 5432 when it names none).
pub fn address(url: &str) -> String {
    let authority = authority(url);
    let host_port = &url[authority.0..authority.1];
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    }
}

/// `url` with its `host:port` replaced by `address` (user and password kept).
pub fn with_address(url: &str, address: &str) -> String {
    let (start, end) = authority(url);
    let userinfo_end = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    format!("{}{address}{}", &url[..userinfo_end], &url[end..])
}

/// Where `host:port` (with any `user:password@`) starts and ends in `url`.
fn authority(url: &str) -> (usize, usize) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_piece_by_piece() {
        let admin = "postgres://postgres:pw@127.0.0.1:5433/postgres?sslmode=disable&dbname=x";
        assert_eq!(
            with_database(admin, "natter_test_1"),
            "postgres://postgres:pw@127.0.0.1:5433/natter_test_1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://localhost", "t"),
            "postgres://localhost/t"
        );
        assert_eq!(
            with_database("postgres://localhost/?sslmode=disable", "t"),
            "postgres://localhost/t?sslmode=disable"
        );
        assert_eq!(address(admin), "127.0.0.1:5433");
        assert_eq!(address("postgres://db.example/x"), "db.example:5432");
        assert_eq!(
            with_address(admin, "127.0.0.1:7000"),
            "postgres://postgres:pw@127.0.0.1:7000/postgres?sslmode=disable&dbname=x"
        );
    }
}
