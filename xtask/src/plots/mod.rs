//! The report's plots, drawn with plotters as SVG text (no font files: the browser renders the
//! text). Each plot says what it shows in its axis labels (with units) and a one-line caption.

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::summary::{Figure, Spread, Summary};

mod draw;

use draw::*;

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
const TASK: RGBColor = RGBColor(44, 160, 44);
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
        memory_vs_connections,
        p99_vs_connections,
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
        "task" => 2,
        _ => 3,
    }
}

const VARIANTS: [(&str, RGBColor); 4] = [
    ("process", PROCESS),
    ("thread", THREAD),
    ("task", TASK),
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
            x_log: Some(4.0),
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
            x_log: Some(4.0),
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
            x_log: None,
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
            x_log: Some(4.0),
            x_fmt: bytes_text,
            y_div: 1000.0,
            y_fmt: micros_text,
        },
        series,
    )
}

/// One line per server model of sockets' connections step: `pick` of each figure named `name`
/// against the count of connections held.
fn by_connections(s: &Summary, name: &str, pick: fn(&Figure) -> Option<&Spread>) -> Series {
    let mut series: Series = Vec::new();
    for f in figures(s, "sockets", name) {
        if let (Some(n), Some(y)) = (f.config_f64("connections"), pick(f)) {
            let label = format!("{} ({})", f.mechanism, f.variant);
            add_point(&mut series, label, (n, spread(y)));
        }
    }
    series
}

fn memory_vs_connections(s: &Summary) -> Result<Option<Plot>> {
    line_plot(
        LinePlot {
            id: "connections-memory",
            title: "Server memory vs connections held, per server model",
            caption: "Read the slopes: a model that makes a process or a thread per connection \
                      climbs with the count, one that multiplexes connections (a pool with \
                      epoll, async tasks) stays near its idle size; PSS of the server with its \
                      children, socket buffers (the kernel's) not included.",
            x_label: "connections held at once (log scale)",
            y_label: "server PSS with its children while holding them (MiB, log scale)",
            x_log: Some(10.0),
            x_fmt: count_text,
            y_div: 1024.0,
            y_fmt: mib_text,
        },
        by_connections(s, "held_pss", |f| Some(&f.figure)),
    )
}

fn p99_vs_connections(s: &Summary) -> Result<Option<Plot>> {
    line_plot(
        LinePlot {
            id: "connections-p99",
            title: "Request p99 vs connections held, per server model",
            caption: "With the same requests in flight at every count (`--in-flight`, 64 by \
                      default), a line that climbs shows the cost of holding more connections: \
                      more units to schedule, or more sockets to poll.",
            x_label: "connections held at once (log scale)",
            y_label: "request p99 (time, log scale, ticks in ns/µs/ms)",
            x_log: Some(10.0),
            x_fmt: count_text,
            y_div: 1000.0,
            y_fmt: micros_text,
        },
        by_connections(s, "held_request", |f| f.p99.as_ref()),
    )
}
