//! Draws the pictures of BENCHMARKS.md as SVG (plotters; text is left to the viewer's
//! fonts, so nothing here needs a font installed):
//!
//! ```text
//! pictures handoff-cdf HANDOFF_SAMPLES OUT.svg    # from bench_handoff's HANDOFF_SAMPLES dump
//! pictures fairness FAIRNESS_TIMELINE OUT.svg     # from bench_handoff's FAIRNESS_TIMELINE dump
//! pictures peers PEERS_DATA OUT.svg               # from tokio-filelock-peers --data
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const FONT: &str = "sans-serif";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [what, input, out] = args.as_slice() else {
        return Err("usage: pictures handoff-cdf|fairness|peers INPUT OUT.svg".into());
    };
    let text = std::fs::read_to_string(input)?;
    let out = Path::new(out);
    match what.as_str() {
        "handoff-cdf" => handoff_cdf(&text, out),
        "fairness" => fairness(&text, out),
        "peers" => peers(&text, out),
        other => Err(format!("unknown picture {other}").into()),
    }
}

/// Series in the order they first appear in `text` ("name<TAB>value" lines).
fn series(text: &str) -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once('\t') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value),
            None => out.push((name.to_owned(), vec![value])),
        }
    }
    for (_, values) in &mut out {
        values.sort_by(f64::total_cmp);
    }
    out
}

/// The hand-off latency distribution: one empirical CDF per waiter, time on a log axis.
fn handoff_cdf(text: &str, out: &Path) -> Result<()> {
    let series = series(text);
    let all = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (lo.max(1.0) / 1.5, hi * 1.5);
    let root = SVGBackend::new(out, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cross-process hand-off latency (release to the waiter's return)",
            (FONT, 20),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("hand-off latency, µs (log scale)")
        .y_desc("fraction of hand-offs at or below")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    for (i, (name, values)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let n = values.len() as f64;
        let points = values
            .iter()
            .enumerate()
            .flat_map(|(k, &v)| [(v, k as f64 / n), (v, (k + 1) as f64 / n)]);
        let p50 = values[values.len() / 2];
        let p50 = if p50 >= 10_000.0 {
            format!("{:.1} ms", p50 / 1000.0)
        } else {
            format!("{p50:.0} µs")
        };
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(format!("{name} (p50 {p50})"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    root.present()?;
    Ok(())
}

/// One hold of a fairness run.
struct Hold {
    process: usize,
    got_ns: u64,
    hold_ns: u64,
}

/// The fairness runs: one panel per (N, variant), one row per process, one bar per hold.
fn fairness(text: &str, out: &Path) -> Result<()> {
    // Lines: "<procs> <variant> <process> <got ns> <hold ns>", runs in order of appearance.
    let mut runs: Vec<((usize, String), Vec<Hold>)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [procs, variant, process, got, hold] = f.as_slice() else {
            continue;
        };
        let key = (procs.parse()?, (*variant).to_owned());
        let hold = Hold {
            process: process.parse()?,
            got_ns: got.parse()?,
            hold_ns: hold.parse()?,
        };
        match runs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, holds)) => holds.push(hold),
            None => runs.push((key, vec![hold])),
        }
    }
    if runs.is_empty() {
        return Err("no holds in the fairness timeline".into());
    }
    let by_n: BTreeMap<usize, usize> = runs.iter().fold(BTreeMap::new(), |mut m, ((n, _), _)| {
        *m.entry(*n).or_default() += 1;
        m
    });
    let columns = by_n.len();
    let rows = by_n.values().copied().max().unwrap_or(1);
    let root =
        SVGBackend::new(out, (560 * columns as u32, 40 + 190 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Fairness: who holds the lock when (one row per process, one bar per hold)",
        (FONT, 20),
    )?;
    let panels = root.split_evenly((rows, columns));
    for (column, n) in by_n.keys().enumerate() {
        let of_n = runs.iter().filter(|((procs, _), _)| procs == n);
        for (row, ((procs, variant), holds)) in of_n.enumerate() {
            draw_timeline(&panels[row * columns + column], *procs, variant, holds)?;
        }
    }
    root.present()?;
    Ok(())
}

fn variant_name(variant: &str) -> &str {
    match variant {
        "flock" => "blocking flock (baseline)",
        "async" => "acquire().await",
        "sync" => "blocking_acquire()",
        "async-unfair" => "acquire().await, fair(false)",
        other => other,
    }
}

fn draw_timeline<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    procs: usize,
    variant: &str,
    holds: &[Hold],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let start = holds.iter().map(|h| h.got_ns).min().unwrap_or(0);
    let end = holds
        .iter()
        .map(|h| h.got_ns + h.hold_ns)
        .max()
        .unwrap_or(1);
    let span_ms = (end - start) as f64 / 1e6;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{procs} processes: {}", variant_name(variant)),
            (FONT, 15),
        )
        .margin(8)
        .x_label_area_size(34)
        .y_label_area_size(36)
        .build_cartesian_2d(0f64..span_ms, -0.5f64..(procs as f64 - 0.5))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(procs)
        .y_label_formatter(&|v| format!("p{}", v.round() as i64))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("ms since the first hold")
        .label_style((FONT, 11))
        .draw()?;
    chart.draw_series(holds.iter().map(|h| {
        let x0 = (h.got_ns - start) as f64 / 1e6;
        let x1 = x0 + h.hold_ns as f64 / 1e6;
        let y = h.process as f64;
        let color = Palette99::pick(h.process).to_rgba();
        Rectangle::new([(x0, y - 0.35), (x1, y + 0.35)], color.filled())
    }))?;
    Ok(())
}

/// The peers table as bars: cycle and hand-off p50 of each row as a ratio to the raw
/// baseline (log axes; the line at 1x is raw). Shorter is better.
fn peers(text: &str, out: &Path) -> Result<()> {
    // Lines: id, label, ours (0/1), cycle µs, hand-off p50 µs, unlock-only p50 µs or "-".
    let mut rows = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [id, label, ours, cycle, handoff, _] = f.as_slice() else {
            continue;
        };
        rows.push((
            *id == "raw",
            (*label).to_owned(),
            *ours == "1",
            cycle.parse::<f64>()?,
            handoff.parse::<f64>()?,
        ));
    }
    let Some(&(_, _, _, raw_cycle, raw_handoff)) = rows.iter().find(|r| r.0) else {
        return Err("no raw row in the peers data".into());
    };
    let labels: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    let height = 90 + 30 * rows.len() as u32;
    let root = SVGBackend::new(out, (1000, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        "Rust file locks against raw std File::lock, same run (shorter is better)",
        (FONT, 20),
    )?;
    let (left, right) = root.split_horizontally(560);
    let panels = [
        (left, "uncontended cycle, x raw", 3, raw_cycle, 230),
        (
            right,
            "cross-process hand-off p50, x raw",
            4,
            raw_handoff,
            10,
        ),
    ];
    for (area, title, column, base, label_width) in panels {
        let ratios: Vec<f64> = rows
            .iter()
            .map(|r| if column == 3 { r.3 } else { r.4 } / base)
            .collect();
        let hi = ratios.iter().copied().fold(1.0, f64::max) * 2.0;
        let lo = ratios.iter().copied().fold(1.0, f64::min) / 1.5;
        let n = rows.len();
        let mut chart = ChartBuilder::on(&area)
            .caption(title, (FONT, 15))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(label_width)
            .build_cartesian_2d((lo..hi).log_scale(), -0.5f64..(n as f64 - 0.5))?;
        let labels = labels.clone();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&move |v| {
                let i = v.round();
                if label_width < 50 || i < 0.0 || (i as usize) >= n {
                    return String::new();
                }
                labels[n - 1 - i as usize].clone()
            })
            .x_label_formatter(&|v| {
                // Only the powers of ten: the others crowd a short log axis.
                let decade = v.log10();
                if (decade - decade.round()).abs() < 1e-9 {
                    format!("{v}x")
                } else {
                    String::new()
                }
            })
            .max_light_lines(1)
            .label_style((FONT, 12))
            .draw()?;
        chart.draw_series(rows.iter().zip(&ratios).enumerate().map(|(i, (r, &x))| {
            let y = (n - 1 - i) as f64;
            let color = if r.2 {
                RGBColor(200, 40, 40)
            } else {
                RGBColor(60, 100, 170)
            };
            Rectangle::new([(lo, y - 0.32), (x, y + 0.32)], color.filled())
        }))?;
        chart.draw_series(ratios.iter().enumerate().map(|(i, &x)| {
            let y = (n - 1 - i) as f64;
            Text::new(format!("{x:.1}x"), (x * 1.08, y + 0.25), (FONT, 11))
        }))?;
        chart.draw_series(LineSeries::new(
            [(1.0, -0.5), (1.0, n as f64 - 0.5)],
            BLACK.stroke_width(1),
        ))?;
    }
    root.present()?;
    Ok(())
}
