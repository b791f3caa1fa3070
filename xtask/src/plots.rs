//! The report's plots, drawn with plotters as SVG text (no font files: the browser renders the
//! text). Each plot says what it shows in its axis labels (with units) and a one-line caption.

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::summary::{Figure, Spread, Summary};

/// A point of a line: x, and y as [median, min, max] over the bench's runs.
type Point = (f64, [f64; 3]);

/// Named lines, each a set of points.
type Series = Vec<(String, Vec<Point>)>;

/// A figure's median with its min..max over the runs, for a point.
fn spread(s: &Spread) -> [f64; 3] {
    [s.median, s.min, s.max]
}

/// One plot of the report.
pub struct Plot {
    pub id: &'static str,
    pub title: String,
    /// What to read from it, one line.
    pub caption: String,
    pub x_label: String,
    pub y_label: String,
    pub svg: String,
}

const PROCESS: RGBColor = RGBColor(31, 119, 180);
const THREAD: RGBColor = RGBColor(230, 120, 20);
const OTHER: RGBColor = RGBColor(120, 120, 120);
const PALETTE: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(230, 120, 20),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(110, 110, 110),
];
const FONT: &str = "sans-serif";
const WIDTH: u32 = 900;

/// Every plot the bench has data for; a plot with no data is left out (a bench of a few
/// topics draws only theirs).
pub fn all(s: &Summary) -> Result<Vec<Plot>> {
    let mut plots = Vec::new();
    for make in [
        latency_by_mechanism,
        round_trip_vs_size,
        creation_cost,
        fork_cost_vs_rss,
        context_switch,
        parallel_speedup,
        cpu_per_operation,
    ] {
        if let Some(p) = make(s)? {
            plots.push(p);
        }
    }
    Ok(plots)
}

fn figures<'a>(
    s: &'a Summary,
    topic: &'a str,
    name: &'a str,
) -> impl Iterator<Item = &'a Figure> + 'a {
    s.figures
        .iter()
        .filter(move |f| f.topic == topic && f.name == name)
}

/// A topic's default message size: the smallest its round trips were measured at.
fn default_bytes(s: &Summary, topic: &str) -> Option<f64> {
    figures(s, topic, "round_trip")
        .filter_map(|f| f.config_f64("bytes"))
        .reduce(f64::min)
}

/// A category of a bar chart: a label, and per series a p50 and maybe a p99.
struct Row {
    label: String,
    bars: Vec<Option<(f64, Option<f64>)>>,
}

fn variant_index(variant: &str) -> usize {
    match variant {
        "process" => 0,
        "thread" => 1,
        _ => 2,
    }
}

const VARIANTS: [(&str, RGBColor); 3] = [
    ("process", PROCESS),
    ("thread", THREAD),
    ("serial / reference", OTHER),
];

/// Rows keyed by label, in first-seen order, one bar per variant.
fn rows_by_variant<'a>(items: impl Iterator<Item = (String, &'a Figure)>) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for (label, f) in items {
        let i = match rows.iter().position(|r| r.label == label) {
            Some(i) => i,
            None => {
                rows.push(Row {
                    label,
                    bars: vec![None; VARIANTS.len()],
                });
                rows.len() - 1
            }
        };
        rows[i].bars[variant_index(&f.variant)] = Some((f.figure.median, f.p99.map(|p| p.median)));
    }
    rows
}

fn latency_by_mechanism(s: &Summary) -> Result<Option<Plot>> {
    let mut items = Vec::new();
    for topic in ["pipes", "sockets", "shm", "mqueue", "semaphore", "condvar"] {
        let bytes = default_bytes(s, topic);
        for f in figures(s, topic, "round_trip") {
            // Judged placements only: the scheduler's mixes one CPU and two from block to block.
            let pin = f.config_str("pin");
            if f.config_f64("bytes") != bytes
                || f.config_str("wait").is_some_and(|w| w != "block")
                || pin == Some("none")
            {
                continue;
            }
            let size = bytes.map_or(String::new(), |b| format!(", {}", bytes_text(b)));
            let at = pin.map_or(String::new(), |p| {
                format!(", {}", labkit::report::placement_text(p))
            });
            items.push((format!("{topic}: {}{size}{at}", f.mechanism), f));
        }
    }
    let rows = rows_by_variant(items.into_iter());
    let x = "round trip: bar p50, whisker to p99 (time, log scale, ticks in ns/µs/ms)";
    let y = "topic: mechanism, message size, placement (one row each)";
    bar_plot(
        "latency",
        "Round trip by mechanism, process vs thread",
        "Read across a row: the process bar against the thread bar of the same mechanism, and \
         every IPC mechanism against the in-process channel.",
        rows,
        x,
        y,
    )
}

fn round_trip_vs_size(s: &Summary) -> Result<Option<Plot>> {
    let picks: [(&str, &str, &str, &str); 6] = [
        ("pipe (processes)", "pipes", "process", "pipe"),
        (
            "Unix socketpair (processes)",
            "sockets",
            "process",
            "socketpair",
        ),
        ("TCP loopback (processes)", "sockets", "process", "tcp"),
        (
            "shm ring, futex wait (processes)",
            "shm",
            "process",
            "shm-ring",
        ),
        ("POSIX mq (processes)", "mqueue", "process", "mq"),
        ("crossbeam channel (threads)", "shm", "thread", "channel"),
    ];
    // One line per mechanism and placement: on one CPU a hand-off is a context switch, on two
    // a cross-CPU wake-up, and the two differ by an order of magnitude on a small VM.
    let mut series: Series = Vec::new();
    for (label, topic, variant, mechanism) in picks {
        for pin in ["same", "split"] {
            let label = format!("{label}, {}", labkit::report::placement_text(pin));
            for f in figures(s, topic, "round_trip").filter(|f| {
                f.variant == variant
                    && f.mechanism == mechanism
                    && f.config_str("wait").is_none_or(|w| w == "block")
                    && f.config_str("pin") == Some(pin)
            }) {
                if let Some(bytes) = f.config_f64("bytes") {
                    add_point(&mut series, label.clone(), (bytes, spread(&f.figure)));
                }
            }
        }
    }
    line_plot(
        LinePlot {
            id: "size",
            title: "IPC round trip vs message size, on one CPU and on two",
            caption: "Where lines cross, the cheaper mechanism changes with the message size: \
                      small messages cost mostly the wake-up, large ones the copies; each point \
                      is the median over the runs, its whisker their min..max.",
            x_label: "message size (bytes, log scale)",
            y_label: "round trip p50, median over runs (time, log scale, ticks in ns/µs/ms)",
            x_log: true,
            x_fmt: bytes_text,
            y_div: 1000.0,
            y_fmt: micros_text,
        },
        series,
    )
}

fn creation_cost(s: &Summary) -> Result<Option<Plot>> {
    let rows = rows_by_variant(figures(s, "spawn", "create").map(|f| (f.mechanism.clone(), f)));
    bar_plot(
        "creation",
        "Creation cost: a unit started, run to its end and waited for",
        "Process rows against thread rows: how many times more a new process costs than a new \
         thread (or a task handed to a pool).",
        rows,
        "create and join one unit: bar p50, whisker to p99 (time, log scale, ticks in ns/µs/ms)",
        "mechanism (one row each)",
    )
}

fn fork_cost_vs_rss(s: &Summary) -> Result<Option<Plot>> {
    let mut series: Series = Vec::new();
    for f in figures(s, "spawn", "create_vs_rss") {
        let Some(rss) = f.config_f64("rss_kib") else {
            continue;
        };
        let label = format!("{} ({})", f.mechanism, f.variant);
        add_point(&mut series, label, (rss / 1024.0, spread(&f.figure)));
    }
    line_plot(
        LinePlot {
            id: "fork-rss",
            title: "Creation cost vs the parent's resident memory",
            caption: "Read the slopes: fork copies the parent's page tables, so a fork line that \
                      climbs with the parent's size shows that cost; posix_spawn and a new thread \
                      copy none.",
            x_label: "parent's resident set (MiB, log scale)",
            y_label: "create and join p50 (time, log scale, ticks in ns/µs/ms)",
            x_log: true,
            x_fmt: mib_text,
            y_div: 1000.0,
            y_fmt: micros_text,
        },
        series,
    )
}

fn context_switch(s: &Summary) -> Result<Option<Plot>> {
    let mut items: Vec<(String, &Figure)> = figures(s, "switch", "round_trip")
        .map(|f| {
            let pin = f.config_str("pin").unwrap_or("none");
            (
                format!("switch: {}, {}", f.mechanism, crate::text::pin_text(pin)),
                f,
            )
        })
        .collect();
    let bytes = default_bytes(s, "pipes");
    items.extend(
        figures(s, "pipes", "round_trip")
            .filter(|f| f.mechanism == "pipe" && f.config_f64("bytes") == bytes)
            .map(|f| {
                let pin = f.config_str("pin").unwrap_or("none");
                (format!("pipes: pipe, {}", crate::text::pin_text(pin)), f)
            }),
    );
    let mut rows = rows_by_variant(items.into_iter());
    for r in &s.reference {
        let label = format!("{}, {}", r.tool, crate::text::pin_text(&r.pin));
        let bar = Some((r.figure.median, None));
        match rows.iter_mut().find(|row| row.label == label) {
            Some(row) => row.bars[variant_index(&r.variant)] = bar,
            None => {
                let mut bars = vec![None; VARIANTS.len()];
                bars[variant_index(&r.variant)] = bar;
                rows.push(Row { label, bars });
            }
        }
    }
    bar_plot(
        "switch",
        "Context switch: a round trip on one CPU and across two",
        "On one CPU each round trip is two context switches; process and thread bars show what \
         an address-space change adds; perf bench sched pipe is the independent reference.",
        rows,
        "round trip: bar p50 (perf: mean), whisker to p99 (time, log scale, ticks in ns/µs/ms)",
        "topic: mechanism, placement (one row each)",
    )
}

fn parallel_speedup(s: &Summary) -> Result<Option<Plot>> {
    let mut series: Series = Vec::new();
    let mut most = 1.0_f64;
    for f in figures(s, "parallel", "speedup") {
        let Some(w) = f.config_f64("workers") else {
            continue;
        };
        most = most.max(w);
        let label = format!("{} ({})", f.mechanism, f.variant);
        add_point(&mut series, label, (w, spread(&f.figure)));
    }
    if series.is_empty() {
        return Ok(None);
    }
    series.push((
        "ideal (speed-up = workers)".to_owned(),
        vec![(1.0, [1.0; 3]), (most, [most; 3])],
    ));
    line_plot(
        LinePlot {
            id: "parallel",
            title: "Parallel speed-up vs workers (CPU-bound job)",
            caption: "Lines near the ideal mean the workers really ran in parallel; if threads \
                      and processes flatten alike past the allowed CPUs, the limit is the cores, \
                      not the kind of unit.",
            x_label: "workers (count)",
            y_label: "speed-up over one serial run (×)",
            x_log: false,
            x_fmt: count_text,
            y_div: 1.0,
            y_fmt: times_text,
        },
        series,
    )
}

fn cpu_per_operation(s: &Summary) -> Result<Option<Plot>> {
    let mut series: Series = Vec::new();
    // The ring only: the channel does not spin, whatever the run's --wait.
    for f in figures(s, "shm", "round_trip").filter(|f| f.mechanism != "channel") {
        let (Some(bytes), Some(cpu), Some(wait)) =
            (f.config_f64("bytes"), f.cpu_ns_per_op, f.config_str("wait"))
        else {
            continue;
        };
        let how = match (wait, f.config_str("pin")) {
            ("spin", _) => "spinning, on two CPUs",
            (_, Some("same")) => "sleeps at once, on one CPU",
            (_, Some("split")) => "spin 10 µs then futex, on two CPUs",
            _ => "spin 10 µs then futex, placed by the scheduler",
        };
        let label = format!("{} {}, {how}", f.variant, f.mechanism);
        add_point(&mut series, label, (bytes, spread(&cpu)));
    }
    line_plot(
        LinePlot {
            id: "cpu",
            title: "CPU time per round trip, spinning vs blocking (shm ring)",
            caption: "Wall-clock latency hides what waiting costs: a spinning side keeps its \
                      CPU busy through every wait (spinning ran on two CPUs, --pin split); the \
                      blocking mode spins 10 µs before it sleeps on two CPUs (and sleeps at once \
                      on one), so shorter waits cost alike.",
            x_label: "message size (bytes, log scale)",
            y_label: "CPU time of both sides per round trip (log scale, ticks in ns/µs/ms)",
            x_log: true,
            x_fmt: bytes_text,
            y_div: 1000.0,
            y_fmt: micros_text,
        },
        series,
    )
}

/// Horizontal bars (one group per row, one bar per variant) on a log axis in µs.
fn bar_plot(
    id: &'static str,
    title: &str,
    caption: &str,
    rows: Vec<Row>,
    x_label: &str,
    y_label: &str,
) -> Result<Option<Plot>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let used: Vec<usize> = (0..VARIANTS.len())
        .filter(|v| rows.iter().any(|r| r.bars[*v].is_some()))
        .collect();
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.bars.iter().flatten())
        .flat_map(|(p50, p99)| [Some(*p50), *p99])
        .flatten()
        .filter(|v| *v > 0.0)
        .map(|v| v / 1000.0)
        .collect();
    let (lo, hi) = decades(&values);
    let band = 14 * used.len() as u32 + 10;
    let height = 110 + band * rows.len() as u32;
    let longest = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let n = rows.len() as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(40 + longest * 7)
            .build_cartesian_2d((lo..hi).log_scale(), -0.5..n - 0.5)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_label_formatter(&|v| micros_text(*v))
            .x_desc(x_label)
            .y_desc(y_label)
            .axis_desc_style((FONT, 14))
            .label_style((FONT, 12))
            .draw()?;
        let slot = 0.8 / used.len() as f64;
        for (k, v) in used.iter().enumerate() {
            let (name, color) = VARIANTS[*v];
            // Row 0 at the top.
            let centre = |i: usize| n - 1.0 - i as f64 - 0.4 + slot * (k as f64 + 0.5);
            let bars: Vec<(usize, f64, Option<f64>)> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.bars[*v].map(|(p50, p99)| (i, p50, p99)))
                // A log axis has no zero: a figure of 0 is left out rather than drawn to -inf.
                .filter(|(_, p50, _)| *p50 > 0.0)
                .collect();
            chart
                .draw_series(bars.iter().map(|(i, p50, _)| {
                    let y = centre(*i);
                    Rectangle::new(
                        [(lo, y - 0.42 * slot), (p50 / 1000.0, y + 0.42 * slot)],
                        color.filled(),
                    )
                }))?
                .label(name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            chart.draw_series(bars.iter().filter_map(|(i, p50, p99)| {
                let y = centre(*i);
                p99.map(|p99| {
                    PathElement::new(
                        vec![(p50 / 1000.0, y), (p99 / 1000.0, y)],
                        BLACK.stroke_width(1),
                    )
                })
            }))?;
            chart.draw_series(bars.iter().filter_map(|(i, _, p99)| {
                let y = centre(*i);
                p99.map(|p99| {
                    PathElement::new(
                        vec![
                            (p99 / 1000.0, y - 0.3 * slot),
                            (p99 / 1000.0, y + 0.3 * slot),
                        ],
                        BLACK.stroke_width(1),
                    )
                })
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()?;
        let style =
            TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, r) in rows.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(lo, n - 1.0 - i as f64));
            root.draw_text(&r.label, &style, (px - 6, py))?;
        }
        root.present()?;
    }
    Ok(Some(Plot {
        id,
        title: title.to_owned(),
        caption: caption.to_owned(),
        x_label: x_label.to_owned(),
        y_label: y_label.to_owned(),
        svg,
    }))
}

struct LinePlot {
    id: &'static str,
    title: &'static str,
    caption: &'static str,
    x_label: &'static str,
    y_label: &'static str,
    x_log: bool,
    x_fmt: fn(f64) -> String,
    /// Figures are divided by this before plotting (ns → µs).
    y_div: f64,
    y_fmt: fn(f64) -> String,
}

/// Adds `point` to the series named `label`, a new series if there is none yet.
fn add_point(series: &mut Series, label: String, point: Point) {
    match series.iter_mut().find(|(l, _)| *l == label) {
        Some((_, points)) => points.push(point),
        None => series.push((label, vec![point])),
    }
}

/// Named series of points (any order: each is drawn by increasing x), each point's median on
/// the line and its min..max as a whisker; log-log, or linear for counts.
fn line_plot(p: LinePlot, series: Series) -> Result<Option<Plot>> {
    let series: Series = series
        .into_iter()
        .map(|(l, pts)| {
            let mut pts = pts
                .into_iter()
                .map(|(x, y)| (x, y.map(|v| v / p.y_div)))
                .filter(|(x, y)| *x > 0.0 && y.iter().all(|v| *v > 0.0))
                .collect::<Vec<_>>();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (l, pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .collect();
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().flat_map(|q| q.1))
        .collect();
    let legend_height = 20 * series.len() as u32;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH, 440 + legend_height)).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot_area, legend_area) = root.split_vertically(440);
        let mut builder = ChartBuilder::on(&plot_area);
        builder
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(80);
        let looks = looks(&series);
        let draw = |legend: Vec<(String, (RGBColor, bool))>| -> Result<()> {
            for (i, (label, (color, thin))) in legend.iter().enumerate() {
                let y = 6 + 20 * i as i32;
                legend_area.draw(&PathElement::new(
                    vec![(90, y + 6), (120, y + 6)],
                    color.stroke_width(if *thin { 1 } else { 3 }),
                ))?;
                legend_area.draw(&Text::new(label.clone(), (128, y), (FONT, 13)))?;
            }
            Ok(())
        };
        let legend: Vec<(String, (RGBColor, bool))> = series
            .iter()
            .zip(&looks)
            .map(|((l, _), look)| (l.clone(), *look))
            .collect();
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_label_formatter(&|v| (p.x_fmt)(*v))
                    .y_label_formatter(&|v| (p.y_fmt)(*v))
                    .x_desc(p.x_label)
                    .y_desc(p.y_label)
                    .axis_desc_style((FONT, 14))
                    .label_style((FONT, 12))
                    .draw()?;
                for ((_, points), &(color, thin)) in series.iter().zip(&looks) {
                    chart.draw_series(LineSeries::new(
                        points.iter().map(|&(x, [y, ..])| (x, y)),
                        color.stroke_width(if thin { 1 } else { 2 }),
                    ))?;
                    let marker = if thin {
                        color.stroke_width(1)
                    } else {
                        color.filled()
                    };
                    chart.draw_series(
                        points
                            .iter()
                            .map(|&(x, [y, ..])| Circle::new((x, y), 3, marker)),
                    )?;
                    // The spread over the runs, where there is one.
                    chart.draw_series(
                        points.iter().filter(|(_, [_, lo, hi])| hi > lo).map(
                            |&(x, [y, lo, hi])| ErrorBar::new_vertical(x, lo, y, hi, color, 6),
                        ),
                    )?;
                }
            }};
        }
        let (ylo, yhi) = decades(&ys);
        if p.x_log {
            // Powers of four: byte sizes read as 64 B, 1 KiB, 16 KiB … rather than 1000 B.
            let (xlo, xhi) = powers_of_four(&xs);
            let ticks: Vec<f64> = (0..)
                .map(|k| xlo * 4f64.powi(k))
                .take_while(|t| *t <= xhi * 1.0001)
                .collect();
            body!(builder.build_cartesian_2d(
                (xlo..xhi).log_scale().with_key_points(ticks),
                (ylo..yhi).log_scale()
            )?);
        } else {
            let xhi = xs.iter().copied().fold(1.0, f64::max);
            let yhi = ys.iter().copied().fold(1.0, f64::max) * 1.1;
            body!(builder.build_cartesian_2d(0.0..xhi + 0.5, 0.0..yhi)?);
        }
        draw(legend)?;
        root.present()?;
    }
    Ok(Some(Plot {
        id: p.id,
        title: p.title.to_owned(),
        caption: p.caption.to_owned(),
        x_label: p.x_label.to_owned(),
        y_label: p.y_label.to_owned(),
        svg,
    }))
}

/// Each line's colour, and whether it is drawn thin with hollow points: lines that differ only
/// by placement share a colour, the one on two CPUs drawn thin.
fn looks(series: &Series) -> Vec<(RGBColor, bool)> {
    let mut groups: Vec<&str> = Vec::new();
    series
        .iter()
        .map(|(label, _)| {
            let thin = label.ends_with(", two CPUs");
            let group = label
                .strip_suffix(", two CPUs")
                .or_else(|| label.strip_suffix(", one CPU"))
                .unwrap_or(label);
            let i = groups.iter().position(|g| *g == group).unwrap_or_else(|| {
                groups.push(group);
                groups.len() - 1
            });
            (PALETTE[i % PALETTE.len()], thin)
        })
        .collect()
}

/// The range out to whole decades around the values (a log axis needs ticks to show).
fn decades(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (1.0, 10.0);
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil()).max(lo * 10.0);
    (lo, hi)
}

/// The range out to powers of four around the values.
fn powers_of_four(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (1.0, 4.0);
    }
    let lo = 4f64.powf((lo.log2() / 2.0).floor());
    let hi = 4f64.powf((hi.log2() / 2.0).ceil()).max(lo * 4.0);
    (lo, hi)
}

/// `2.5 µs`-style tick text for values already in µs.
fn micros_text(us: f64) -> String {
    if us >= 1000.0 {
        format!("{} ms", trim(us / 1000.0))
    } else if us >= 1.0 {
        format!("{} µs", trim(us))
    } else {
        format!("{} ns", trim(us * 1000.0))
    }
}

/// Tick text for byte sizes: `64 B`, `4 KiB`, `1 MiB`.
fn bytes_text(b: f64) -> String {
    labkit::report::format_bytes(b.round() as u64)
}

fn mib_text(m: f64) -> String {
    format!("{} MiB", trim(m))
}

fn count_text(n: f64) -> String {
    if (n - n.round()).abs() < 1e-9 {
        format!("{}", n.round())
    } else {
        String::new()
    }
}

fn times_text(x: f64) -> String {
    format!("×{}", trim(x))
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
