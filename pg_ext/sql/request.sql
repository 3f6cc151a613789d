-- The SQL helper of the request JSON: its dt.

-- The request's dt: milliseconds and the UTC offset of infor_comm.timezone, e.g. 2023-07-27T09:27:04.953+03:00.
CREATE FUNCTION infor_comm.format_request_dt(dt timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $body$
    SELECT to_char(local_time, 'YYYY-MM-DD"T"HH24:MI:SS.MS')
           || CASE WHEN utc_offset < interval '0' THEN '-' ELSE '+' END
           || to_char(CASE WHEN utc_offset < interval '0' THEN -utc_offset ELSE utc_offset END, 'HH24:MI')
      FROM (SELECT dt AT TIME ZONE tz AS local_time,
                   (dt AT TIME ZONE tz) - (dt AT TIME ZONE 'UTC') AS utc_offset
              FROM (SELECT infor_comm.setting_timezone() AS tz) AS setting) AS parts
$body$;
