-- infor_comm 0.1.0 → 0.2.0, applied by ALTER EXTENSION infor_comm UPDATE in one transaction.
-- Every change of the schema or of a SQL function after 0.1.0 is here, in the order it was made.
-- Never edited once 0.2.0 is released. docs/upgrading.md says how to add to it.
\echo Use "ALTER EXTENSION infor_comm UPDATE TO '0.2.0'" to load this file. \quit
