-- CREATE EXTENSION does not adopt a schema infor_comm that another role could change: one owned
-- by a role that is not a superuser, one in which such a role may create objects, one that is
-- not empty. It installs into the installing superuser's own empty schema. (A database of its
-- own, dropped at the end.)
CREATE DATABASE infor_comm_guard;
\c infor_comm_guard
CREATE ROLE guard_owner;
CREATE SCHEMA infor_comm AUTHORIZATION guard_owner;
CREATE EXTENSION infor_comm;
DROP SCHEMA infor_comm;
CREATE SCHEMA infor_comm;
GRANT CREATE ON SCHEMA infor_comm TO guard_owner;
CREATE EXTENSION infor_comm;
REVOKE CREATE ON SCHEMA infor_comm FROM guard_owner;
CREATE FUNCTION infor_comm.run_daily_step() RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE EXTENSION infor_comm;
DROP FUNCTION infor_comm.run_daily_step();
CREATE EXTENSION infor_comm;
SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'infor_comm') AS installed
  FROM pg_extension WHERE extname = 'infor_comm';
\c infor_comm_regress
DROP DATABASE infor_comm_guard;
DROP ROLE guard_owner;
