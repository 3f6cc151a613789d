-- What the calls changed (infor_comm.uplift, all clients first selected), as an SVG chart with
-- plain SQL: for each measure, a bar for the asked group's rate and one for the held-out
-- group's, and the uplift (asked minus held out) with its 95% interval as a whisker. scripts/demo
-- writes it next to the funnel chart; docs/reports.md embeds the one in docs/:
--   psql -X -q -At -f sql/reports/uplift_chart.sql -o uplift.svg
WITH u AS (
    SELECT * FROM infor_comm.uplift() WHERE reaction IS NULL
), m (n, measure, title) AS (
    VALUES (0, 'status', 'migrated now (status)'), (1, 'history', 'wizard status changed within 30 days')
), g AS (
    SELECT m.n, m.title,
           (SELECT rate::numeric FROM u WHERE u.measure = m.measure AND grp = 'asked') AS asked,
           (SELECT rate::numeric FROM u WHERE u.measure = m.measure AND grp = 'held out') AS held_out,
           (SELECT clients FROM u WHERE u.measure = m.measure AND grp = 'asked') AS asked_n,
           (SELECT clients FROM u WHERE u.measure = m.measure AND grp = 'held out') AS held_out_n,
           (SELECT uplift::numeric FROM u WHERE u.measure = m.measure AND grp = 'uplift') AS uplift,
           (SELECT ci_low::numeric FROM u WHERE u.measure = m.measure AND grp = 'uplift') AS ci_low,
           (SELECT ci_high::numeric FROM u WHERE u.measure = m.measure AND grp = 'uplift') AS ci_high,
           (SELECT method FROM u WHERE u.measure = m.measure AND grp = 'uplift') AS method
      FROM m
)
-- Each measure has a panel 330 px wide; rates and the uplift share one axis, 0 at y = 300 and
-- 100% at y = 60 (an uplift below 0 goes under the axis).
SELECT concat(
    '<svg xmlns="http://www.w3.org/2000/svg" width="720" height="420" font-family="sans-serif" font-size="11">',
    '<rect width="720" height="420" fill="white"/>',
    '<text x="30" y="24" font-size="15" font-weight="bold">infor_comm.uplift: the asked against the held-out clients</text>',
    (SELECT string_agg(concat(
        format('<text x="%s" y="48" font-weight="bold">%s</text>', 40 + g.n * 340, g.title),
        format('<line x1="%s" y1="300" x2="%s" y2="300" stroke="#444"/>', 30 + g.n * 340, 330 + g.n * 340),
        -- The asked group's bar, then the held-out group's, 90 px to its right.
        (SELECT string_agg(concat(
            format('<rect x="%s" y="%s" width="70" height="%s" fill="%s"><title>%s: %s of %s clients</title></rect>',
                   50 + b.k * 90 + g.n * 340, 300 - round(240 * b.rate), round(240 * b.rate),
                   b.fill, b.grp, b.rate, b.clients),
            format('<text x="%s" y="%s" text-anchor="middle">%s%%</text>', 85 + b.k * 90 + g.n * 340,
                   295 - round(240 * b.rate), round(100 * b.rate, 1)),
            format('<text x="%s" y="318" text-anchor="middle">%s (%s)</text>', 85 + b.k * 90 + g.n * 340,
                   b.grp, b.clients)), '' ORDER BY b.k)
           FROM (VALUES (0, 'asked', '#3182bd', coalesce(g.asked, 0), coalesce(g.asked_n, 0)),
                        (1, 'held out', '#bdbdbd', coalesce(g.held_out, 0), coalesce(g.held_out_n, 0)))
                AS b (k, grp, fill, rate, clients)),
        CASE WHEN g.uplift IS NOT NULL THEN concat(
            format('<rect x="%s" y="%s" width="70" height="%s" fill="#31a354"><title>uplift %s, 95%% interval %s to %s (%s)</title></rect>',
                   230 + g.n * 340, 300 - round(240 * greatest(g.uplift, 0)), round(240 * abs(g.uplift)),
                   g.uplift, g.ci_low, g.ci_high, g.method),
            format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="black" stroke-width="2"/>',
                   265 + g.n * 340, 300 - round(240 * g.ci_high), 265 + g.n * 340, 300 - round(240 * g.ci_low)),
            format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="black"/><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="black"/>',
                   255 + g.n * 340, 300 - round(240 * g.ci_high), 275 + g.n * 340, 300 - round(240 * g.ci_high),
                   255 + g.n * 340, 300 - round(240 * g.ci_low), 275 + g.n * 340, 300 - round(240 * g.ci_low)),
            format('<text x="%s" y="318" text-anchor="middle">uplift %s pt</text>', 265 + g.n * 340, round(100 * g.uplift, 1)),
            format('<text x="%s" y="332" text-anchor="middle" font-size="9">95%%: %s to %s pt</text>', 265 + g.n * 340,
                   round(100 * g.ci_low, 1), round(100 * g.ci_high, 1)),
            format('<text x="%s" y="344" text-anchor="middle" font-size="9">%s</text>', 265 + g.n * 340, g.method))
        ELSE format('<text x="%s" y="318" text-anchor="middle">no held-out client</text>', 265 + g.n * 340) END
    ), '' ORDER BY g.n) FROM g),
    '<text x="30" y="400" font-size="10">Bars: the share of each group that succeeded; green: asked minus held out, the whisker its 95% confidence interval.</text>',
    '</svg>');
