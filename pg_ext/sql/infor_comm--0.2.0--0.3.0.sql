-- infor_comm 0.2.0 → 0.3.0: everything that changed since the release of 0.2.0.
-- Each change here is also in the source (pg_ext/sql/*.sql or the Rust code) that makes a fresh
-- install; scripts/test-upgrade checks that both end with the same schema.
\echo Use "ALTER EXTENSION infor_comm UPDATE TO '0.3.0'" to load this file. \quit
