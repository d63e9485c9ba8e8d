//! The status page's history charts: server-rendered SVG inside the page, sans I/O. No script,
//! no external asset, no inline `style` (the page's CSP allows neither): presentation
//! attributes only.
//!
//! One chart per metric (charge, runtime, load, input voltage), so no chart needs colour to
//! tell its lines apart: the average is a line, lowest to highest a shaded band, time on
//! battery a hatched background with a legend, events marks with their text on hover. A bucket
//! without a reading breaks the line and the band: gaps are shown as gaps, never joined. Each
//! chart has a title and a text summary for screen readers and for whoever cannot see colour.

use std::fmt::Write;

use super::pages::esc;
use crate::state::history::{Bucket, Range, UpsHistory, METRICS, NO_DATA, ON_BATTERY, POLLED};
use crate::state::Shared;

/// Drawing area, in the SVG's own units.
const LEFT: f64 = 58.0;
const TOP: f64 = 10.0;
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 100.0;
const BOTTOM: f64 = 24.0;
const RIGHT: f64 = 10.0;
/// Columns at most: buckets are merged (lowest of the lowest, mean of the averages, highest of
/// the highest) so a chart stays small: points of 5 minutes over 24 hours (288), of 30 minutes
/// over 7 days (336).
const COLUMNS: usize = 336;
/// Events listed under the charts.
const LISTED_EVENTS: usize = 20;

/// What each metric is called and how its numbers read.
struct Metric {
    title: &'static str,
    unit: &'static str,
    /// The axis' top at least this; 0: from the data.
    floor: f64,
}

const INFO: [Metric; 4] = [
    Metric {
        title: "Battery charge",
        unit: "%",
        floor: 100.0,
    },
    Metric {
        title: "Battery runtime",
        unit: "min",
        floor: 0.0,
    },
    Metric {
        title: "Load",
        unit: "%",
        floor: 100.0,
    },
    Metric {
        title: "Input voltage",
        unit: "V",
        floor: 0.0,
    },
];

/// One drawn column: merged buckets.
#[derive(Clone, Copy, Debug, Default)]
struct Column {
    value: Option<(f64, f64, f64)>,
    marks: u8,
}

fn columns(buckets: &[(u64, Bucket)], metric: usize) -> (Vec<Column>, usize) {
    let per = buckets.len().div_ceil(COLUMNS).max(1);
    let cols = buckets
        .chunks(per)
        .map(|chunk| {
            let mut c = Column::default();
            let (mut n, mut sum, mut lo, mut hi) = (0u32, 0.0, f64::INFINITY, f64::NEG_INFINITY);
            for (_, b) in chunk {
                c.marks |= b.marks;
                if let Some((l, a, h)) = b.get(metric) {
                    n += 1;
                    sum += a;
                    lo = lo.min(l);
                    hi = hi.max(h);
                }
            }
            if n > 0 {
                let scale = if metric == 1 { 60.0 } else { 1.0 };
                c.value = Some((lo / scale, sum / f64::from(n) / scale, hi / scale));
            }
            c
        })
        .collect();
    (cols, per)
}

/// A round number at or above `x`: 1, 2, 2.5 or 5 times a power of ten.
fn nice(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= x - 1e-9 {
            return m * p;
        }
    }
    10.0 * p
}

fn fmt(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// `minutes` for people: `1 h 5 min`, `12 min`.
fn duration(minutes: u64) -> String {
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn utc(t: u64) -> String {
    crate::settings::store::timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t))
}

/// Runs of consecutive indexes where `f` holds: (first, last).
fn runs(n: usize, f: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for i in (0..n).filter(|&i| f(i)) {
        match out.last_mut() {
            Some(r) if r.1 + 1 == i => r.1 = i,
            _ => out.push((i, i)),
        }
    }
    out
}

/// The chart of metric `metric` over `buckets` (oldest first, with their start times); `id`
/// makes its element ids unique on the page. `events` (time, text) are marked on it.
fn chart(
    out: &mut String,
    buckets: &[(u64, Bucket)],
    step: u64,
    metric: usize,
    range: Range,
    id: &str,
    events: &[(u64, &str)],
) {
    let m = &INFO[metric];
    let (cols, per) = columns(buckets, metric);
    let start = buckets.first().map_or(0, |b| b.0);
    let span = (buckets.len() as u64 * step).max(1) as f64;
    let col_w = WIDTH / cols.len().max(1) as f64;
    let x_of = |i: usize| LEFT + (i as f64 + 0.5) * col_w;
    let high = cols
        .iter()
        .filter_map(|c| c.value.map(|v| v.2))
        .fold(0.0, f64::max);
    let top = nice(high.max(m.floor));
    let y_of = |v: f64| TOP + HEIGHT - (v.clamp(0.0, top) / top) * HEIGHT;
    let range_text = match range {
        Range::Day => "last 24 hours",
        Range::Week => "last 7 days",
    };
    // The summary: what a reader without the picture needs.
    let present: Vec<(f64, f64, f64)> = cols.iter().filter_map(|c| c.value).collect();
    let bucket_minutes = step / 60;
    let on_battery = buckets
        .iter()
        .filter(|(_, b)| b.marks & ON_BATTERY != 0)
        .count() as u64
        * bucket_minutes;
    let missing = buckets
        .iter()
        .filter(|(_, b)| b.get(metric).is_none())
        .count() as u64
        * bucket_minutes;
    let mut summary = if present.is_empty() {
        format!("no readings in the {range_text}")
    } else {
        let lo = present.iter().map(|v| v.0).fold(f64::INFINITY, f64::min);
        let hi = present
            .iter()
            .map(|v| v.2)
            .fold(f64::NEG_INFINITY, f64::max);
        let avg = present.iter().map(|v| v.1).sum::<f64>() / present.len() as f64;
        format!(
            "lowest {} {u}, average {} {u}, highest {} {u}",
            fmt(lo),
            fmt(avg),
            fmt(hi),
            u = m.unit
        )
    };
    if on_battery > 0 {
        let _ = write!(summary, "; on battery for {}", duration(on_battery));
    }
    if missing > 0 && !present.is_empty() {
        let _ = write!(summary, "; no data for {}", duration(missing));
    }
    let w = LEFT + WIDTH + RIGHT;
    let h = TOP + HEIGHT + BOTTOM;
    let _ = write!(
        out,
        "<figure class=\"chart\" data-metric=\"{name}\"><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" font-family=\"sans-serif\" font-size=\"13\">\
<title id=\"{id}-t\">{title} ({unit}), {range_text}</title><desc id=\"{id}-d\">{summary}</desc>\
<defs><pattern id=\"{id}-ob\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#9a5b00\" stroke-width=\"2\" stroke-opacity=\"0.45\"/></pattern></defs>",
        name = METRICS[metric],
        title = m.title,
        unit = m.unit,
    );
    // On battery: hatched behind everything.
    for (a, b) in runs(cols.len(), |i| cols[i].marks & ON_BATTERY != 0) {
        let _ = write!(
            out,
            "<rect class=\"ob\" x=\"{:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{HEIGHT}\" fill=\"url(#{id}-ob)\"><title>on battery</title></rect>",
            LEFT + a as f64 * col_w,
            (b - a + 1) as f64 * col_w
        );
    }
    // The value axis: 0, half, top.
    for v in [0.0, top / 2.0, top] {
        let y = y_of(v);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#c9ced6\" stroke-width=\"0.5\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#667085\">{} {}</text>",
            LEFT + WIDTH,
            LEFT - 4.0,
            y + 3.0,
            fmt(v),
            m.unit
        );
    }
    // The time axis: every 6 hours, or every day at midnight UTC.
    let tick = match range {
        Range::Day => 6 * 3600,
        Range::Week => 86_400,
    };
    let end = start + span as u64;
    let mut t = start.div_ceil(tick) * tick;
    while t < end {
        let x = LEFT + (t - start) as f64 / span * WIDTH;
        let stamp = utc(t);
        let label = match range {
            Range::Day => format!("{} UTC", &stamp[11..16]),
            Range::Week => stamp[5..10].to_string(),
        };
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#c9ced6\" stroke-width=\"0.5\"/>\
<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"#667085\">{label}</text>",
            TOP + HEIGHT + 3.0,
            TOP + HEIGHT + 17.0,
            // A label at the right edge ends there rather than running off the picture.
            anchor = if x > LEFT + WIDTH - 24.0 { "end" } else { "middle" },
        );
        t += tick;
    }
    // Lowest to highest, and the average: one band and one line per run without a gap.
    let mut line = String::new();
    for (a, b) in runs(cols.len(), |i| cols[i].value.is_some()) {
        let v = |i: usize| cols[i].value.unwrap_or_default();
        if a == b {
            // A lone column: a dot, so it is not lost.
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"#1f5fae\"/>",
                x_of(a),
                y_of(v(a).1)
            );
            continue;
        }
        let mut band = String::new();
        for i in a..=b {
            let _ = write!(band, "{:.1},{:.1} ", x_of(i), y_of(v(i).2));
        }
        for i in (a..=b).rev() {
            let _ = write!(band, "{:.1},{:.1} ", x_of(i), y_of(v(i).0));
        }
        let _ = write!(
            out,
            "<polygon class=\"band\" points=\"{}\" fill=\"#1f5fae\" fill-opacity=\"0.18\"/>",
            band.trim_end()
        );
        for i in a..=b {
            let _ = write!(
                line,
                "{}{:.1} {:.1}",
                if i == a { "M" } else { "L" },
                x_of(i),
                y_of(v(i).1)
            );
        }
    }
    if !line.is_empty() {
        let _ = write!(
            out,
            "<path class=\"avg\" d=\"{line}\" fill=\"none\" stroke=\"#1f5fae\" stroke-width=\"1.5\" stroke-linejoin=\"round\"/>"
        );
    }
    // Events: a mark at the top with its text.
    for (t, text) in events {
        if *t < start || *t >= end {
            continue;
        }
        let x = LEFT + (t - start) as f64 / span * WIDTH;
        let _ = write!(
            out,
            "<path class=\"event\" d=\"M{:.1} {TOP}l3 -6h-6z\" fill=\"#b42318\"><title>{} {}</title></path>",
            x,
            &utc(*t)[..16].replace('T', " "),
            esc(text)
        );
    }
    let _ = write!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"none\" stroke=\"#c9ced6\"/></svg>\
<figcaption><b>{title}</b> ({range_text}, {every}): {summary}.</figcaption></figure>",
        title = m.title,
        every = if per * step as usize >= 120 {
            format!("points of {} min", per * step as usize / 60)
        } else {
            "points of 1 min".to_string()
        },
    );
}

/// One UPS's charts and its events in the range.
fn ups_charts(out: &mut String, u: &UpsHistory, k: usize, now: u64, range: Range) {
    let tier = u.tier(range);
    let buckets: Vec<(u64, Bucket)> = tier.view(now).collect();
    let since = buckets.first().map_or(0, |b| b.0);
    let marked: Vec<(u64, &str)> = u
        .events
        .iter()
        .filter(|e| e.time >= since && e.level <= log::Level::Warn)
        .map(|e| (e.time, e.text.as_str()))
        .collect();
    let polled = buckets.iter().any(|(_, b)| b.marks & POLLED != 0);
    let _ = write!(out, "<h3>{}</h3>", esc(&u.name));
    if !polled {
        out.push_str("<p class=\"small\">No readings in this range yet.</p>");
    } else {
        if buckets
            .iter()
            .all(|(_, b)| b.marks & POLLED == 0 || b.marks & NO_DATA != 0)
        {
            out.push_str("<p class=\"small\">upsd had no data for this UPS in this range.</p>");
        }
        out.push_str("<div class=\"charts\">");
        for metric in 0..METRICS.len() {
            let id = format!("h{k}m{metric}");
            let ev: &[(u64, &str)] = if metric == 0 { &marked } else { &[] };
            chart(out, &buckets, tier.step(), metric, range, &id, ev);
        }
        out.push_str("</div>");
    }
    let listed: Vec<_> = u.events.iter().filter(|e| e.time >= since).collect();
    if !listed.is_empty() {
        let _ = write!(
            out,
            "<details><summary>Events in this range ({})</summary><table class=\"events\"><tbody>",
            listed.len()
        );
        for e in listed.iter().rev().take(LISTED_EVENTS) {
            let class = match e.level {
                log::Level::Error => "bad",
                log::Level::Warn => "warn",
                _ => "info",
            };
            let _ = write!(
                out,
                "<tr class=\"{class}\"><td class=\"nowrap\">{}</td><td>{}</td></tr>",
                super::pages::when(e.time),
                esc(&e.text)
            );
        }
        out.push_str("</tbody></table></details>");
    }
}

/// The status page's history section: the range chosen (links to the other), each UPS's
/// charts, a legend in words.
pub fn section(s: &Shared, now: u64, range: Range) -> String {
    let mut out = String::from("<section class=\"card history\" id=\"history\"><h2>History</h2>");
    let link = |r: Range, text: &str| {
        let cur = if r == range {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"/?range={}#history\"{cur}>{text}</a>", r.as_str())
    };
    let _ = write!(
        out,
        "<p class=\"range\">{} · {} · <a href=\"/api/history?range={}\">JSON</a></p>",
        link(Range::Day, "Last 24 hours"),
        link(Range::Week, "Last 7 days"),
        range.as_str()
    );
    let shown: Vec<&UpsHistory> = s
        .ups
        .iter()
        .filter_map(|u| s.history.get(&u.name))
        .collect();
    if shown.is_empty() {
        out.push_str("<p class=\"small\">No history yet: it starts with the first reading.</p>");
    }
    for (k, u) in shown.iter().enumerate() {
        ups_charts(&mut out, u, k, now, range);
    }
    out.push_str(
        "<p class=\"small\">The line is the average, the shaded band the lowest to the highest reading; hatched: on battery; ▼ an event (its text on hover); a break in the line: no reading then (the agent stopped, or upsd had no data). Times in UTC.</p></section>",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::history::{Sample, ON_BATTERY, POLLED};

    fn shared_with_history() -> (Shared, u64) {
        let mut s = crate::web::metrics::tests::shared();
        let t0 = 1_800_000_000;
        // Two hours on line, a gap of an hour (the agent stopped), half an hour on battery.
        for k in 0..(120 * 2) {
            let t = t0 + k * 30;
            s.history.record(
                "rack \"A\"",
                t,
                &Sample {
                    values: [Some(100.0), Some(1800.0), Some(20.0), Some(230.0)],
                    marks: POLLED,
                },
            );
        }
        for k in 0..60 {
            let t = t0 + 3 * 3600 + k * 30;
            s.history.record(
                "rack \"A\"",
                t,
                &Sample {
                    values: [Some(100.0 - k as f64), Some(900.0), Some(20.0), Some(0.0)],
                    marks: POLLED | ON_BATTERY,
                },
            );
        }
        s.history.event(
            "rack \"A\"",
            t0 + 3 * 3600,
            log::Level::Warn,
            "on battery <b>now</b>",
        );
        (s, t0 + 4 * 3600)
    }

    #[test]
    fn web_charts_break_at_gaps_and_mark_time_on_battery() {
        let (s, now) = shared_with_history();
        let html = section(&s, now, Range::Day);
        // One figure per metric, each with a title and a summary in words.
        assert_eq!(html.matches("<figure class=\"chart\"").count(), 4, "{html}");
        assert!(html.contains("<title id=\"h0m0-t\">Battery charge (%), last 24 hours</title>"));
        assert!(
            html.contains("on battery for 30 min; no data for 21 h 30 min"),
            "{html}"
        );
        assert!(html.contains("lowest 41 %, average"), "{html}");
        // The average line has two runs (before and after the gap): two `M`s, no line across.
        let avg = html.split("class=\"avg\" d=\"").nth(1).unwrap();
        let d = &avg[..avg.find('"').unwrap()];
        assert_eq!(d.matches('M').count(), 2, "{d}");
        // The hatched on-battery area and the event mark, its text escaped.
        assert!(html.contains("fill=\"url(#h0m0-ob)\""));
        assert!(html.contains("on battery &lt;b&gt;now&lt;/b&gt;"));
        assert!(!html.contains("<b>now"));
        // No inline style, no script: the page's CSP holds.
        assert!(!html.contains("style="));
        assert!(!html.contains("<script"));
        // Small enough to send with every status page.
        assert!(html.len() < 60_000, "{} bytes", html.len());
    }

    #[test]
    fn web_charts_of_a_full_week_stay_small() {
        let mut s = crate::web::metrics::tests::shared();
        let t0 = 1_800_000_000;
        for k in 0..(8 * 86_400 / 20) {
            let v = (k % 97) as f64;
            s.history.record(
                "rack \"A\"",
                t0 + k * 20,
                &Sample {
                    values: [
                        Some(v),
                        Some(v * 37.0),
                        Some(v / 3.0),
                        Some(220.0 + v / 7.0),
                    ],
                    marks: POLLED | if k % 2000 < 20 { ON_BATTERY } else { 0 },
                },
            );
        }
        let now = t0 + 8 * 86_400;
        for (range, points) in [
            (Range::Day, "points of 5 min"),
            (Range::Week, "points of 30 min"),
        ] {
            let html = section(&s, now, range);
            // One line per chart, unbroken: no gap in the readings.
            assert_eq!(html.matches("class=\"avg\" d=\"M").count(), 4);
            assert_eq!(html.matches(" M").count(), 0);
            assert!(html.contains(points), "{range:?}");
            // A UPS's four charts with every point: about 48 KB (24 h), 62 KB (7 days).
            assert!(html.len() < 70_000, "{range:?}: {} bytes", html.len());
        }
    }

    #[test]
    fn web_charts_week_and_empty() {
        let (s, now) = shared_with_history();
        let html = section(&s, now, Range::Week);
        assert!(html.contains("last 7 days"));
        assert!(html.contains("href=\"/?range=7d#history\" aria-current=\"page\""));
        let mut empty = crate::web::metrics::tests::shared();
        empty.history = Default::default();
        assert!(section(&empty, now, Range::Day).contains("No history yet"));
        assert_eq!(nice(0.0), 1.0);
        assert_eq!(nice(231.0), 250.0);
        assert_eq!(nice(30.0), 50.0);
        assert_eq!(duration(90), "1 h 30 min");
    }
}
