//! Black-box tests: a real natter on an ephemeral port, spoken to over HTTP and WebSocket.

mod account_limits;
mod accounts;
mod cache;
mod edge;
mod helpers;
mod integrity;
mod operations;
mod pages;
mod pair;
mod rate_limits;
mod rooms;
mod websocket;
mod ws_limits;

#[path = "../support/postgres.rs"]
mod postgres_support;
#[path = "../support/redis.rs"]
mod redis_support;
