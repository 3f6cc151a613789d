-- The daily funnel (infor_comm.daily_funnel) of the last 30 days as an SVG bar chart, with
-- plain SQL: one group of bars a day, one bar a stage. scripts/demo writes it to
-- docs/reports-funnel.svg, which docs/reports.md embeds:
--   psql -X -q -At -f sql/reports/funnel_chart.sql -o funnel.svg
WITH funnel AS (
    SELECT * FROM infor_comm.daily_funnel ORDER BY day DESC LIMIT 30
), stage (n, name, color) AS (
    VALUES (1, 'thinking clients', '#c6dbef'),
           (2, 'requests sent', '#9ecae1'),
           (3, 'confirmed by the broker', '#6baed6'),
           (4, 'task created (reply 0)', '#3182bd'),
           (5, 'call made (task processed)', '#08519c'),
           (6, 'task not processed', '#fd8d3c'),
           (7, 'no task (reply 1 or 2)', '#e6550d')
), day AS (
    SELECT f.*, (pg_catalog.row_number() OVER (ORDER BY f.day) - 1)::integer AS i FROM funnel f
), bar AS (
    SELECT d.day, d.i, s.n, s.name, s.color,
           CASE s.n WHEN 1 THEN coalesce(d.thinking_clients, d.requests_sent)
                    WHEN 2 THEN d.requests_sent
                    WHEN 3 THEN d.confirmed_by_broker
                    WHEN 4 THEN d.replied_task_created
                    WHEN 5 THEN d.tasks_processed
                    WHEN 6 THEN d.tasks_not_processed
                    ELSE d.replied_client_not_found + d.replied_other_error END AS v
      FROM day d CROSS JOIN stage s
), scale AS (
    SELECT greatest(max(v), 1) AS vmax, greatest(count(DISTINCT day), 1) AS days FROM bar
), layout AS (
    -- A plot 300 px high from y = 50 and at most 1,000 px wide from x = 60: a group of 7 bars
    -- a day (170 px for a few days, narrower for many), the legend on the right.
    SELECT vmax, days, least(170, 1000 / days) AS gw, least(170, 1000 / days) * 0.8 / 7 AS bw,
           60 + days * least(170, 1000 / days) + 250 AS width,
           greatest(1, ceil(days * 80.0 / 1000)::int) AS label_every
      FROM scale
)
SELECT concat(
    format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="420" font-family="sans-serif" font-size="11">', l.width),
    format('<rect width="%s" height="420" fill="white"/>', l.width),
    '<text x="60" y="24" font-size="15" font-weight="bold">infor_comm.daily_funnel: each day''s requests, stage by stage</text>',
    format('<line x1="55" y1="350" x2="%s" y2="350" stroke="#444"/>', 60 + l.days * l.gw),
    format('<text x="50" y="54" text-anchor="end">%s</text><text x="50" y="354" text-anchor="end">0</text>', l.vmax),
    (SELECT string_agg(
        format('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"><title>%s, %s: %s</title></rect>',
               round(60 + b.i * l.gw + 0.1 * l.gw + (b.n - 1) * l.bw, 1), 350 - round(300.0 * b.v / l.vmax),
               round(l.bw * 0.9, 1), round(300.0 * b.v / l.vmax), b.color, b.day, b.name, b.v)
        || CASE WHEN l.bw >= 14
                THEN format('<text x="%s" y="%s" text-anchor="middle" font-size="9">%s</text>',
                            round(60 + b.i * l.gw + 0.1 * l.gw + (b.n - 0.5) * l.bw, 1),
                            346 - round(300.0 * b.v / l.vmax), b.v)
                ELSE '' END,
        '' ORDER BY b.i, b.n) FROM bar b),
    (SELECT string_agg(format('<text x="%s" y="368" text-anchor="middle">%s</text>',
                              round(60 + (d.i + 0.5) * l.gw, 1), to_char(d.day, 'YYYY-MM-DD')), '' ORDER BY d.i)
       FROM day d WHERE (l.days - 1 - d.i) % l.label_every = 0),
    (SELECT string_agg(format('<rect x="%s" y="%s" width="12" height="12" fill="%s"/><text x="%s" y="%s">%s</text>',
                              l.width - 230, 50 + (s.n - 1) * 20, s.color, l.width - 212, 60 + (s.n - 1) * 20, s.name),
                       '' ORDER BY s.n) FROM stage s),
    CASE WHEN NOT EXISTS (SELECT 1 FROM funnel)
         THEN '<text x="60" y="200">no request yet</text>' END,
    '</svg>')
  FROM layout l;
