//! Implementations of the ports, one folder per technology. The only code that names a driver.

pub mod memory;
pub mod postgres;
pub mod redis;
mod sql;
pub mod sqlite;
