-- Runs first in CREATE EXTENSION: refuses a schema infor_comm that another role created.
--
-- CREATE EXTENSION uses a schema infor_comm that already exists. If a role that is not a
-- superuser created it, owns it, or may create objects in it, that role could put its own
-- function or operator where the extension's SECURITY DEFINER code, or the pg_cron job, would
-- call it. So the schema must belong to the installing superuser (or another superuser), only
-- superusers may create objects in it, and it must be empty.
DO $guard$
DECLARE
    owner_name   text;
    owner_super  boolean;
    creators     text;
    found_object text;
BEGIN
    SELECT r.rolname, r.rolsuper INTO owner_name, owner_super
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'infor_comm';
    IF owner_name IS DISTINCT FROM CURRENT_USER AND NOT coalesce(owner_super, false) THEN
        RAISE EXCEPTION 'infor_comm: the schema infor_comm exists and belongs to role %, which is not a superuser', owner_name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'CREATE EXTENSION infor_comm installs into the schema infor_comm; its owner could replace the extension''s functions, which pg_cron and the relay call.',
                  HINT = 'Drop the schema (or rename it) and run CREATE EXTENSION infor_comm again: it creates the schema itself.';
    END IF;
    SELECT pg_catalog.string_agg(CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END, ', ')
      INTO creators
      FROM pg_catalog.pg_namespace n
     CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
      LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE n.nspname OPERATOR(pg_catalog.=) 'infor_comm'
       AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'
       AND NOT coalesce(r.rolsuper, false);
    IF creators IS NOT NULL THEN
        RAISE EXCEPTION 'infor_comm: roles that are not superusers may create objects in the schema infor_comm: %', creators
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'They could put their own functions or operators beside the extension''s.',
                  HINT = pg_catalog.format('REVOKE CREATE ON SCHEMA infor_comm FROM %s, or drop the schema and let CREATE EXTENSION create it.', creators);
    END IF;
    SELECT o.what INTO found_object FROM (
        SELECT pg_catalog.format('relation %I', c.relname) AS what FROM pg_catalog.pg_class c
         WHERE c.relnamespace OPERATOR(pg_catalog.=) 'infor_comm'::pg_catalog.regnamespace
        UNION ALL
        SELECT pg_catalog.format('function %s', p.oid::pg_catalog.regprocedure) FROM pg_catalog.pg_proc p
         WHERE p.pronamespace OPERATOR(pg_catalog.=) 'infor_comm'::pg_catalog.regnamespace
        UNION ALL
        SELECT pg_catalog.format('type %I', t.typname) FROM pg_catalog.pg_type t
         WHERE t.typnamespace OPERATOR(pg_catalog.=) 'infor_comm'::pg_catalog.regnamespace
        UNION ALL
        SELECT pg_catalog.format('operator %s', o.oid::pg_catalog.regoperator) FROM pg_catalog.pg_operator o
         WHERE o.oprnamespace OPERATOR(pg_catalog.=) 'infor_comm'::pg_catalog.regnamespace
    ) o LIMIT 1;
    IF found_object IS NOT NULL THEN
        RAISE EXCEPTION 'infor_comm: the schema infor_comm is not empty: it has %', found_object
            USING ERRCODE = 'object_in_use',
                  DETAIL = 'CREATE EXTENSION infor_comm installs into an empty schema infor_comm; an object already there could stand in for one of the extension''s.',
                  HINT = 'Move or drop what is in the schema infor_comm (or drop the schema), then run CREATE EXTENSION infor_comm again.';
    END IF;
END
$guard$;
