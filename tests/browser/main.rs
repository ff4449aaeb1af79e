//! End-to-end tests of the web client in a real, headless Chromium, driven over WebDriver
//! (fantoccini and chromedriver). Each test starts its own natter, its own chromedriver
//! and browsers, so tests run in parallel. They are `#[ignore = "needs CHROME"]`: run them
//! with `--include-ignored` and `CHROME` set.

mod attention;
mod changes;
mod driver;
mod format;
mod members;
mod pages;
mod reconnect;
mod room;
