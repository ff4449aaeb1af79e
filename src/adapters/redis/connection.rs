//! What every Redis adapter shares: the client's timeouts, connecting, the deadline on a
//! call, and the mapping of Redis errors to [`Unavailable`].

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::ports::Unavailable;

/// A Redis round trip (including waiting for a reconnection) longer than this is an error.
pub(super) const DEADLINE: Duration = Duration::from_secs(3);
/// Connecting, and each response, time out after this (the client's own timeouts).
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects with timeouts and few reconnection retries, so no call waits long while Redis
/// is down; the manager reconnects by itself when it is back.
pub(super) async fn connect_manager(url: &str) -> Result<ConnectionManager, Unavailable> {
    let client = redis::Client::open(url).map_err(unavailable)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(IO_TIMEOUT))
        .set_response_timeout(Some(IO_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    deadline(ConnectionManager::new_with_config(client, config)).await
}

/// Runs a Redis call under [`DEADLINE`], mapping every failure to [`Unavailable`].
pub(super) async fn deadline<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, Unavailable> {
    match tokio::time::timeout(DEADLINE, call).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(Unavailable("Redis did not answer in time".into())),
    }
}

pub(super) fn unavailable(error: redis::RedisError) -> Unavailable {
    Unavailable(Box::new(error))
}
