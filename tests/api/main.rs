//! Black-box tests: a real natter on an ephemeral port, spoken to over HTTP and WebSocket.

mod accounts;
mod cache;
mod edge;
mod helpers;
mod operations;
mod pages;
mod rate_limits;
mod rooms;
mod websocket;

#[path = "../support/postgres.rs"]
mod postgres_support;
#[path = "../support/redis.rs"]
mod redis_support;
