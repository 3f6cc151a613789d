-- The roles infor_comm_relay, infor_comm_reader, infor_comm_job, infor_comm_writer and
-- infor_comm_operator, before
-- anything is granted to them: each role's grants are beside its entry points (pg_ext/src/api/),
-- and what is revoked from PUBLIC is in privileges.sql, which runs last.

-- The five roles (cluster-wide; kept when the extension is dropped). Another database may be
-- creating them at the same moment: that is fine.
DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['infor_comm_relay', 'infor_comm_reader', 'infor_comm_job', 'infor_comm_writer', 'infor_comm_operator'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                -- infor_comm_writer bypasses row-level security (below).
                EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN%s', role_name,
                                          CASE WHEN role_name = 'infor_comm_writer' THEN ' BYPASSRLS' ELSE '' END);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$roles$;

-- Raises unless infor_comm_writer is sealed: it cannot log in, has no attribute beyond that of
-- an ordinary role, no role is a member of it and it is a member of no role. It owns the daily
-- job's SECURITY DEFINER functions: a role that could act as it could write the requests.
-- Checked by CREATE EXTENSION and the update; infor_comm.health reports it too.
CREATE FUNCTION infor_comm.writer_role_problem() RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT CASE
        WHEN r.oid IS NULL THEN 'role infor_comm_writer does not exist'
        WHEN r.rolsuper OR r.rolcanlogin OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication
        THEN 'role infor_comm_writer has attributes it must not have ('
             || concat_ws(', ', CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
                          CASE WHEN r.rolcanlogin THEN 'LOGIN' END,
                          CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
                          CASE WHEN r.rolcreatedb THEN 'CREATEDB' END,
                          CASE WHEN r.rolreplication THEN 'REPLICATION' END) || ')'
        WHEN EXISTS (SELECT FROM pg_auth_members m WHERE m.roleid = r.oid)
        THEN 'role infor_comm_writer has members ('
             || (SELECT string_agg(quote_ident(u.rolname), ', ' ORDER BY u.rolname)
                   FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member
                  WHERE m.roleid = r.oid) || ')'
        WHEN EXISTS (SELECT FROM pg_auth_members m WHERE m.member = r.oid)
        THEN 'role infor_comm_writer is a member of other roles ('
             || (SELECT string_agg(quote_ident(g.rolname), ', ' ORDER BY g.rolname)
                   FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                  WHERE m.member = r.oid) || ')'
    END
      FROM (SELECT 1) one
      LEFT JOIN pg_roles r ON r.rolname = 'infor_comm_writer'
$body$;
COMMENT ON FUNCTION infor_comm.writer_role_problem() IS
    'What is wrong with the role infor_comm_writer (it can log in, has members, ...), or NULL when it is sealed as the daily job needs.';

CREATE FUNCTION infor_comm.require_writer_role_is_sealed() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    problem text := infor_comm.writer_role_problem();
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'infor_comm: %', problem
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The daily job writes the requests as infor_comm_writer; a role that can log in as it, or act as it, could forge them.',
                  HINT = 'A role of that name existed before infor_comm: make it NOLOGIN and NOSUPERUSER, revoke its memberships (REVOKE infor_comm_writer FROM ...), or drop it, then try again.';
    END IF;
END
$body$;
COMMENT ON FUNCTION infor_comm.require_writer_role_is_sealed() IS
    'Raises unless the role infor_comm_writer is sealed (infor_comm.writer_role_problem()).';

-- Grants infor_comm_writer what the daily job reads: USAGE on infor_comm.host_schema and SELECT
-- on the four host tables that exist there (ordinary or partitioned tables). CREATE EXTENSION
-- and the update call it; a superuser calls it again once the host tables exist. Returns the
-- tables granted.
CREATE FUNCTION infor_comm.grant_host_tables_to_writer() RETURNS text[]
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $body$
DECLARE
    host_schema text;
    granted     text[] := '{}';
    host_table  regclass;
BEGIN
    BEGIN
        host_schema := infor_comm.setting_host_schema();
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'infor_comm: infor_comm_writer was granted no host table: %', SQLERRM;
        RETURN granted;
    END;
    FOR host_table IN
        SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = host_schema AND c.relkind IN ('r', 'p')
           AND c.relname IN ('product_migration_clients', 'wizard_status_change_log',
                             'clients_back_system_ids', 'clientsnapshot')
         ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO infor_comm_writer', host_table);
        granted := granted || host_table::text;
    END LOOP;
    IF cardinality(granted) > 0 THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO infor_comm_writer', host_schema);
    END IF;
    RETURN granted;
END
$body$;
COMMENT ON FUNCTION infor_comm.grant_host_tables_to_writer() IS
    'Grants infor_comm_writer USAGE on infor_comm.host_schema and SELECT on the host tables there; returns the tables granted. Run by CREATE EXTENSION and the update; run it again once the host tables exist.';

-- infor_comm_writer: the role the daily job's SECURITY DEFINER functions run as. It holds what
-- the job writes (below), so nobody may log in as it or be a member of it; an existing role of
-- that name that could be used so is refused (infor_comm.require_writer_role_is_sealed()).
SELECT infor_comm.require_writer_role_is_sealed();
-- It bypasses row-level security: the policies of the extension's tables are the reader's, and
-- a host table with row-level security is refused before it is read (host_tables.rs).
DO $bypass$
BEGIN
    -- Only when it lacks it: databases installing at the same moment would otherwise update the
    -- role's row together ("tuple concurrently updated").
    IF NOT (SELECT rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = 'infor_comm_writer') THEN
        ALTER ROLE infor_comm_writer BYPASSRLS;
    END IF;
END
$bypass$;
