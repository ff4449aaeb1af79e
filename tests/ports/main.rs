//! One suite per port, run against every adapter: each behaviour is written once, against
//! the port, and stamped out per adapter by `port_suite!`, so `store::sqlite::seq_has_no_gaps`
//! and `store::postgres::seq_has_no_gaps` are separate tests.
//!
//! Service-backed adapters' tests are `#[ignore = "needs TEST_DATABASE_URL"]` (or
//! `TEST_REDIS_URL`): `--include-ignored` runs them, and without their variable they fail.

/// `port_suite! { adapters { … } behaviours { … } }` in a port's file: a module per
/// adapter, `adapter: Fixture` (a [`fixtures::PortFixture`]), holding a test per behaviour,
/// an `async fn behaviour(port: Fixture::Port)` of the file. Each test makes a fresh
/// fixture, hands the behaviour its port and keeps the fixture to the end. An adapter that
/// needs a service is written `#[ignore = "needs VAR"] adapter: Fixture`, and must be: the
/// attribute is checked against the fixture's `NEEDS` at compile time. A behaviour runs
/// under `#[tokio::test]` unless it is written with a runtime attribute of its own.
macro_rules! port_suite {
    (
        adapters { $($(#[ignore = $needs:literal])? $adapter:ident: $fixture:ty),+ $(,)? }
        behaviours $behaviours:tt
    ) => {
        $(port_suite!(@adapter $adapter, $fixture, [$($needs)?], $behaviours);)+
    };
    (@adapter $adapter:ident, $fixture:ty, $needs:tt,
        { $($(#[$runtime:meta])? $behaviour:ident),+ $(,)? }) => {
        mod $adapter {
            // The fixture is named in the port's file.
            use super::*;

            port_suite!(@gate $adapter, $fixture, $needs);
            $(port_suite!(@test $fixture, $needs, [$(#[$runtime])?], $behaviour);)+
        }
    };
    (@gate $adapter:ident, $fixture:ty, [$($needs:literal)?]) => {
        const _: () = assert!(
            crate::fixtures::ignored_as_it_needs::<$fixture>(port_suite!(@some $($needs)?)),
            concat!(
                "the tests of `", stringify!($adapter), "` must carry #[ignore = \"needs VAR\"] ",
                "exactly when `", stringify!($fixture), "::NEEDS` is Some(\"VAR\")"
            ),
        );
    };
    (@some) => { None };
    (@some $needs:literal) => { Some($needs) };
    (@test $fixture:ty, $needs:tt, [], $behaviour:ident) => {
        port_suite!(@test $fixture, $needs, [#[tokio::test]], $behaviour);
    };
    (@test $fixture:ty, [$($needs:literal)?], [#[$runtime:meta]], $behaviour:ident) => {
        #[$runtime]
        $(#[ignore = $needs])?
        async fn $behaviour() {
            let fixture = <$fixture as crate::fixtures::PortFixture>::make().await;
            super::$behaviour(crate::fixtures::PortFixture::port(&fixture)).await;
            // Owns what the test must clean up (a directory, a database, a Redis prefix).
            drop(fixture);
        }
    };
}

mod bus;
mod fixtures;
mod postgres_fixture;
mod rate_limiter;
mod redis_fixture;
mod room_state;
mod store;
