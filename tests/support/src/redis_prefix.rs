//! A Redis key prefix of a test's own on a shared server: `natter-test-<hex>:`. Every key
//! under it is deleted when the value is dropped (also when the test panics). Nothing else
//! on the server is touched.

use std::time::Duration;

use rand::Rng;

pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub fn new(url: &str) -> TestRedis {
        TestRedis {
            url: url.to_owned(),
            prefix: format!("natter-test-{:016x}:", rand::thread_rng().gen::<u64>()),
        }
    }

    /// Every key under the prefix, on a connection of its own (usable from sync code).
    pub fn keys(&self) -> redis::RedisResult<Vec<String>> {
        self.keys_matching("*")
    }

    /// Keys under the prefix matching the glob `pattern` (which follows the prefix).
    pub fn keys_matching(&self, pattern: &str) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.connection()?;
        let keys = redis::Commands::scan_match::<_, String>(
            &mut conn,
            format!("{}{pattern}", self.prefix),
        )?
        .collect::<Result<Vec<_>, _>>()?;
        Ok(keys)
    }

    /// A blocking connection of its own, for raw commands in tests.
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let timeout = Duration::from_secs(5);
        let conn = redis::Client::open(self.url.as_str())?.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(conn)
    }

    fn clean(&self) -> redis::RedisResult<()> {
        let keys = self.keys()?;
        let mut conn = self.connection()?;
        for chunk in keys.chunks(500) {
            redis::cmd("DEL").arg(chunk).exec(&mut conn)?;
        }
        Ok(())
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Blocking I/O on a connection of its own: fine inside an async test's runtime.
        if let Err(e) = self.clean() {
            eprintln!("could not delete the Redis keys under {}: {e}", self.prefix);
        }
    }
}
