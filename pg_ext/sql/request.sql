-- The SQL helpers of the request JSON: its dt, and the client's back-system ids.

-- The request's dt: milliseconds and the UTC offset of infor_comm.timezone, e.g. 2023-07-27T09:27:04.953+03:00.
CREATE FUNCTION infor_comm.format_request_dt(dt timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $body$
    SELECT to_char(local_time, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
           || CASE WHEN utc_offset < interval '0' THEN '-' ELSE '+' END
           || to_char(CASE WHEN utc_offset < interval '0' THEN -utc_offset ELSE utc_offset END, 'HH24:MI')
      FROM (SELECT dt AT TIME ZONE tz AS local_time,
                   (dt AT TIME ZONE tz) - (dt AT TIME ZONE 'UTC') AS utc_offset
              FROM (SELECT infor_comm.setting_timezone() AS tz) AS setting) AS parts
$body$;

-- The client's IBSO and INFOR ids (clients_back_system_ids), each sorted, without blanks.
-- (A set-returning SQL function, so that the planner inlines it into the daily statement.)
CREATE FUNCTION infor_comm.back_system_ids(mdm_id varchar)
RETURNS TABLE (ibso text[], infor text[])
LANGUAGE sql STABLE PARALLEL SAFE
AS $body$
    SELECT coalesce(array_agg(DISTINCT b.back_system_id::text ORDER BY b.back_system_id::text)
                        FILTER (WHERE b.back_system_name = 'ibso'), '{}'),
           coalesce(array_agg(DISTINCT b.back_system_id::text ORDER BY b.back_system_id::text)
                        FILTER (WHERE b.back_system_name = 'infor'), '{}')
      FROM clients_back_system_ids b
     WHERE b.mdm_id = back_system_ids.mdm_id
       AND b.back_system_name IN ('ibso', 'infor')
       AND btrim(b.back_system_id) <> ''
$body$;
