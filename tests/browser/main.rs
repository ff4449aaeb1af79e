//! End-to-end tests of the web client in a real, headless Chromium, driven over WebDriver
//! (fantoccini and chromedriver). Each test starts its own natter, its own chromedriver
//! and browsers, so tests run in parallel. They are `#[ignore = "needs CHROME"]`: run them
//! with `--include-ignored` and `CHROME` set.

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../support/postgres.rs"]
mod postgres_support;
#[path = "../support/redis.rs"]
mod redis_support;

mod driver;
mod pages;
mod reconnect;
mod room;
