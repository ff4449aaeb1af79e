//! natter: a real-time chat server.
//!
//! Read the modules in this order; each depends only on those above it.
//!
//! - [`config`]: the one place that reads the environment.
//! - [`domain`]: always-valid values (usernames, slugs, bodies) and the records the product talks about.
//! - [`protocol`]: the JSON frames of the WebSocket, as the contract spells them.
//! - [`telemetry`]: logging setup and the Prometheus metrics.
//! - [`ports`]: the small traits the chat service needs from the outside world.
//! - [`chat`]: the rules: accounts, rooms, sending, history, presence, limits. No HTTP, no SQL.
//! - [`adapters`]: the ports' implementations, and the only code naming a driver: SQLite and
//!   PostgreSQL stores; in-process and Redis cache, presence, rate limiter and bus.
//! - [`http`]: axum routes, pages, the WebSocket endpoint. Talks only to the chat service.
//! - [`app`]: picks the adapters, builds the service and the router, binds and serves.

pub mod adapters;
pub mod app;
pub mod chat;
pub mod config;
pub mod domain;
pub mod http;
pub mod ports;
pub mod protocol;
pub mod telemetry;
