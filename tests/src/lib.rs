//! Test harness for the integration tests: starts a PostgreSQL 15 cluster of its own (on a free
//! port, in a temporary directory, with pg_cron preloaded) and hands each test a fresh database
//! with the `infor_comm` extension and the bank's host tables.
//!
//! The extension must be installed into the PostgreSQL found by `pg_config` (the README's test
//! command does that with `cargo pgrx install`). PostgreSQL refuses to run as root: when the
//! tests run as root, the server runs as the `postgres` user.

pub mod postgres;

pub use postgres::{insert_thinking_clients, PgCluster, TestDb};
