-- Describes every object of the infor_comm extension, one line each, in a stable order, so that
-- two databases can be compared with diff: an upgraded one and a fresh install must print the
-- same lines. Run with psql -X -At. Used by scripts/test-upgrade.

-- The objects that belong to the extension.
SELECT 'member ' || pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
 WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
   AND d.deptype = 'e' AND e.extname = 'infor_comm'
 ORDER BY 1;

-- The extension itself: its schema, its configuration tables (what pg_dump dumps).
SELECT 'extension ' || e.extname || ' schema=' || e.extnamespace::regnamespace
       || ' relocatable=' || e.extrelocatable
       || ' config=' || coalesce((SELECT pg_catalog.string_agg(c::regclass::text, ',' ORDER BY c::regclass::text)
                                    FROM pg_catalog.unnest(e.extconfig) c), '')
       || ' conditions=' || coalesce(pg_catalog.array_to_string(e.extcondition, '|'), '')
  FROM pg_catalog.pg_extension e WHERE e.extname = 'infor_comm';

-- Privileges, normalised: one line per grantee and privilege.
CREATE TEMP VIEW acl_lines AS
SELECT o.kind, o.name, a.grantee, a.privilege_type, a.is_grantable
  FROM (SELECT 'relation' AS kind, c.oid::regclass::text AS name, c.relacl AS acl
          FROM pg_catalog.pg_class c WHERE c.relnamespace = 'infor_comm'::regnamespace
        UNION ALL
        SELECT 'column', c.oid::regclass::text || '.' || a.attname, a.attacl
          FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = 'infor_comm'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT 'routine', p.oid::regprocedure::text, p.proacl
          FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'infor_comm'::regnamespace
        UNION ALL
        SELECT 'schema', n.nspname::text, n.nspacl
          FROM pg_catalog.pg_namespace n WHERE n.nspname = 'infor_comm') o
 CROSS JOIN LATERAL (
       SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END AS grantee,
              x.privilege_type, x.is_grantable
         FROM pg_catalog.aclexplode(o.acl) x) a;
SELECT 'grant ' || kind || ' ' || name || ' to ' || grantee || ': ' || privilege_type
       || CASE WHEN is_grantable THEN ' with grant option' ELSE '' END
  FROM acl_lines ORDER BY 1;
-- An object whose privileges were never changed has a NULL acl (its owner's defaults).
SELECT 'default-privileges ' || c.oid::regclass::text
  FROM pg_catalog.pg_class c WHERE c.relnamespace = 'infor_comm'::regnamespace AND c.relacl IS NULL
UNION ALL
SELECT 'default-privileges ' || p.oid::regprocedure::text
  FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'infor_comm'::regnamespace AND p.proacl IS NULL
ORDER BY 1;

-- Owners: the daily job's writing functions belong to infor_comm_writer, the rest to the
-- superuser who installed the extension.
SELECT 'owner ' || o.kind || ' ' || o.name || ' ' || o.owner::regrole::text
  FROM (SELECT 'relation' AS kind, c.oid::regclass::text AS name, c.relowner AS owner
          FROM pg_catalog.pg_class c WHERE c.relnamespace = 'infor_comm'::regnamespace
        UNION ALL
        SELECT 'routine', p.oid::regprocedure::text, p.proowner
          FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'infor_comm'::regnamespace) o
 ORDER BY 1;

-- Relations: kind, persistence, options, row security, comment.
SELECT 'relation ' || c.oid::regclass::text || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
       || ' options=' || coalesce(pg_catalog.array_to_string(c.reloptions, ','), '')
       || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity
       || ' comment=' || coalesce(pg_catalog.obj_description(c.oid, 'pg_class'), '<none>')
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'infor_comm'::regnamespace
 ORDER BY 1;

-- Columns, in their order (the position among the live columns, so a dropped column does not count).
SELECT 'column ' || c.oid::regclass::text || ' #' || pg_catalog.row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
       || ' ' || a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '')
       || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity by default' ELSE '' END
       || CASE a.attgenerated WHEN 's' THEN ' generated stored' ELSE '' END
       || coalesce(' collate ' || co.collname, '')
       || ' comment=' || coalesce(pg_catalog.col_description(c.oid, a.attnum), '<none>')
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
 WHERE c.relnamespace = 'infor_comm'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.oid::regclass::text, a.attnum;

-- Constraints, indexes, triggers, policies, rules.
SELECT 'constraint ' || co.conrelid::regclass::text || ' ' || co.conname || ': '
       || pg_catalog.pg_get_constraintdef(co.oid)
       || CASE WHEN co.condeferrable THEN ' deferrable' ELSE '' END
  FROM pg_catalog.pg_constraint co
 WHERE co.connamespace = 'infor_comm'::regnamespace
 ORDER BY 1;
SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
       || ' comment=' || coalesce(pg_catalog.obj_description(i.indexrelid, 'pg_class'), '<none>')
  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
 WHERE c.relnamespace = 'infor_comm'::regnamespace
 ORDER BY 1;
SELECT 'trigger ' || pg_catalog.pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'infor_comm'::regnamespace AND NOT t.tgisinternal
 ORDER BY 1;
SELECT 'policy ' || p.polrelid::regclass::text || ' ' || p.polname || ' ' || p.polcmd::text
       || ' using=' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '')
       || ' check=' || coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '')
  FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid
 WHERE c.relnamespace = 'infor_comm'::regnamespace
 ORDER BY 1;
SELECT 'sequence ' || s.seqrelid::regclass::text || ' ' || pg_catalog.format_type(s.seqtypid, NULL)
       || ' start=' || s.seqstart || ' increment=' || s.seqincrement || ' min=' || s.seqmin
       || ' max=' || s.seqmax || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle
  FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
 WHERE c.relnamespace = 'infor_comm'::regnamespace
 ORDER BY 1;

-- Views, by their definition.
SELECT 'view ' || c.oid::regclass::text || E':\n' || pg_catalog.pg_get_viewdef(c.oid)
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace = 'infor_comm'::regnamespace AND c.relkind IN ('v', 'm')
 ORDER BY c.oid::regclass::text;

-- Routines, by their whole definition (language, volatility, security, settings, body).
SELECT 'routine ' || p.oid::regprocedure::text
       || ' comment=' || coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '<none>') || E'\n'
       || CASE WHEN p.prokind = 'a' THEN '<aggregate>' ELSE pg_catalog.pg_get_functiondef(p.oid) END
  FROM pg_catalog.pg_proc p
 WHERE p.pronamespace = 'infor_comm'::regnamespace
 ORDER BY p.oid::regprocedure::text;

-- Types of the schema other than the row types of its relations.
SELECT 'type ' || t.oid::regtype::text || ' ' || t.typtype::text
  FROM pg_catalog.pg_type t
 WHERE t.typnamespace = 'infor_comm'::regnamespace AND t.typrelid = 0 AND t.typelem = 0
 ORDER BY 1;

-- The schema's comment, and the reference rows the extension ships.
SELECT 'schema comment=' || coalesce(pg_catalog.obj_description('infor_comm'::regnamespace, 'pg_namespace'), '<none>');
SELECT 'client_reaction ' || r::text FROM infor_comm.client_reaction r ORDER BY r.reaction_id;
