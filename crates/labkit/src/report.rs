//! The Report of docs/ARCHITECTURE.md: what a topic measured, what it checked, what it concludes.
//!
//! The same structs serialise (topics) and deserialise (xtask, tests); deserialising denies
//! unknown fields, so a topic that drifts from the schema fails `cargo xtask verify`.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cli::CommonArgs;
use crate::cli::Variant;
use crate::host::Host;
use crate::measure::LatencyRecorder;
pub use crate::verdict::format_ns;
use crate::verdict::{Test, Verdict, format_figure};

/// The version of the Report's shape; bump it when a field changes meaning. 2: a measured
/// claim carries its `test` (both sides' block figures), its `confidence` and `placement`, and
/// `ratio_range` is the confidence interval of the median pair ratio.
pub const SCHEMA: u32 = 3;

/// How a run that did not break ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every check passed (skips allowed).
    Passed,
    /// At least one check failed; the Report says which.
    ChecksFailed,
}

impl Outcome {
    /// The outcome a finished Report stands for.
    pub fn of(report: &Report) -> Outcome {
        if report.passed() {
            Outcome::Passed
        } else {
            Outcome::ChecksFailed
        }
    }
}

/// One topic's run: parameters, host, measurements, checks and claims.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub schema: u32,
    pub topic: String,
    pub summary: String,
    pub params: Map<String, Value>,
    pub host: Host,
    pub measurements: Vec<Measurement>,
    pub checks: Vec<Check>,
    pub claims: Vec<Claim>,
}

/// Whether a measurement is a latency distribution or a single figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Histogram,
    Value,
}

/// One figure, or one distribution, identified by `name/variant/mechanism` plus `config`.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    pub name: String,
    pub variant: Variant,
    pub mechanism: String,
    pub config: Map<String, Value>,
    pub kind: Kind,
    pub unit: String,
    pub samples: Option<u64>,
    pub min: Option<u64>,
    pub p50: Option<u64>,
    pub p90: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
    pub mean: Option<f64>,
    pub value: Option<f64>,
    /// User + system CPU time over the timed section, children included, per operation.
    pub cpu_ns_per_op: Option<f64>,
}

/// The outcome of a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// A correctness check: nothing lost, nothing corrupted, nothing leaked, the observation made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

/// Whether a claim rests on a ratio of figures or on a yes/no outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    Measured,
    Observed,
}

/// A finding about this machine, for one claim of the seed.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub id: String,
    pub verdict: Verdict,
    pub basis: Basis,
    /// Where the two sides ran, for claims judged per placement: `same` (one CPU) or `split`.
    pub placement: Option<String>,
    /// How many times the side the claim favours wins (median over block pairs); > 1 supports it.
    pub ratio: Option<f64>,
    /// The confidence interval of that median (see [`crate::verdict`]).
    pub ratio_range: Option<[f64; 2]>,
    /// The probability that `ratio_range` covers the median pair ratio.
    pub confidence: Option<f64>,
    /// The measurements compared, as `name/variant/mechanism`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compares: Vec<String>,
    /// A measured claim's block figures, side by side, and what the claim expects of them.
    pub test: Option<Test>,
    pub evidence: String,
}

impl Claim {
    /// A measured claim decided by `test`, with the evidence written from its figures.
    pub fn measured(id: &str, test: Test, compares: Vec<String>) -> Claim {
        let j = test.judge();
        Claim {
            id: id.to_owned(),
            verdict: j.verdict,
            basis: Basis::Measured,
            placement: None,
            ratio: Some(j.ratio),
            ratio_range: Some(j.interval),
            confidence: Some(j.confidence),
            compares,
            evidence: test.evidence(),
            test: Some(test),
        }
    }
}

impl Measurement {
    /// A latency distribution in nanoseconds.
    pub fn histogram(
        name: &str,
        variant: Variant,
        mechanism: &str,
        config: Value,
        latency: &LatencyRecorder,
        cpu_ns_per_op: Option<f64>,
    ) -> Measurement {
        let h = latency.histogram();
        Measurement {
            kind: Kind::Histogram,
            samples: Some(h.len()),
            min: Some(h.min()),
            p50: Some(h.value_at_quantile(0.50)),
            p90: Some(h.value_at_quantile(0.90)),
            p99: Some(h.value_at_quantile(0.99)),
            max: Some(h.max()),
            mean: Some(h.mean()),
            value: None,
            // The identity fields are a single figure's.
            ..Measurement::value(name, variant, mechanism, config, "ns", 0.0, cpu_ns_per_op)
        }
    }

    /// A single figure, such as a throughput in MiB/s.
    pub fn value(
        name: &str,
        variant: Variant,
        mechanism: &str,
        config: Value,
        unit: &str,
        value: f64,
        cpu_ns_per_op: Option<f64>,
    ) -> Measurement {
        Measurement {
            name: name.to_owned(),
            variant,
            mechanism: mechanism.to_owned(),
            config: object(config),
            kind: Kind::Value,
            unit: unit.to_owned(),
            samples: None,
            min: None,
            p50: None,
            p90: None,
            p99: None,
            max: None,
            mean: None,
            value: Some(value),
            cpu_ns_per_op,
        }
    }

    /// `name/variant/mechanism`, the form claims use in `compares`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.name, self.variant.as_str(), self.mechanism)
    }
}

/// A measurement's config as `key=value` pairs, strings unquoted: `bytes=64 pin=none`.
pub fn config_text(config: &Map<String, Value>) -> String {
    let pairs: Vec<String> = config
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    pairs.join(" ")
}

fn object(config: Value) -> Map<String, Value> {
    match config {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => panic!("a measurement's config must be a JSON object, not {other}"),
    }
}

impl Report {
    /// An empty report for `topic`, with this machine's description filled in.
    pub fn new(topic: &str) -> Report {
        Report {
            schema: SCHEMA,
            topic: topic.to_owned(),
            summary: String::new(),
            params: Map::new(),
            host: Host::collect(),
            measurements: Vec::new(),
            checks: Vec::new(),
            claims: Vec::new(),
        }
    }

    /// Records a parameter of the run (sizes, placement) under `params`.
    pub fn param(&mut self, key: &str, value: impl Into<Value>) {
        self.params.insert(key.to_owned(), value.into());
    }

    /// Adds a measurement. Two with the same identity would be a bug in the topic, which
    /// `testkit::problems` finds in every topic's tests and in `cargo xtask verify`.
    pub fn measure(&mut self, m: Measurement) {
        self.measurements.push(m);
    }

    /// Records a check that passed or failed.
    pub fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        let status = if passed { Status::Pass } else { Status::Fail };
        self.push_check(name, status, detail.into());
    }

    /// Records a check that could not run here, with the reason.
    pub fn skip(&mut self, name: &str, reason: impl Into<String>) {
        self.push_check(name, Status::Skip, reason.into());
    }

    fn push_check(&mut self, name: &str, status: Status, detail: String) {
        let name = name.to_owned();
        self.checks.push(Check {
            name,
            status,
            detail,
        });
    }

    /// Records a claim decided by `test` (see [`crate::verdict`]); the evidence is written
    /// from its figures. Returns the claim, for a placement to be set.
    pub fn claim_measured(
        &mut self,
        id: &str,
        test: Test,
        compares: [&Measurement; 2],
    ) -> &mut Claim {
        let compares = compares.iter().map(|m| m.key()).collect();
        self.claims.push(Claim::measured(id, test, compares));
        self.claims.last_mut().expect("just pushed")
    }

    /// Records a claim decided by an outcome of the run: `Holds` or `DoesNotHold` when it was
    /// observed, `Inconclusive` when the run could not observe it (e.g. a check failed).
    pub fn claim_observed(&mut self, id: &str, verdict: Verdict, evidence: impl Into<String>) {
        self.claims.push(Claim {
            id: id.to_owned(),
            verdict,
            basis: Basis::Observed,
            placement: None,
            ratio: None,
            ratio_range: None,
            confidence: None,
            compares: Vec::new(),
            test: None,
            evidence: evidence.into(),
        });
    }

    /// Finds a measurement by `name/variant/mechanism` (the first, whatever its config).
    pub fn find(&self, key: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.key() == key)
    }

    /// Records, when only one side runs, that the findings comparing the two were skipped.
    pub fn note_one_side(&mut self, common: &CommonArgs) {
        if !common.both_sides() {
            let side = if common.wants(Variant::Process) {
                "process"
            } else {
                "thread"
            };
            self.skip(
                "the findings that compare processes with threads",
                format!("--variant {side} ran one side only"),
            );
        }
    }

    /// Sets the one-line summary, ending it with "; a check FAILED." when one did.
    pub fn conclude(&mut self, summary: impl Into<String>) {
        let ending = if self.passed() {
            "."
        } else {
            "; a check FAILED."
        };
        self.summary = summary.into() + ending;
    }

    /// True when no check failed (skips are allowed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The end of every run: the Report printed ([`Report::emit`]), and the run's outcome.
    pub fn end(self, json: bool) -> anyhow::Result<Outcome> {
        use anyhow::Context;
        self.emit(json).context("write the report to stdout")?;
        Ok(Outcome::of(&self))
    }

    /// Writes the Report to stdout: JSON alone with `json`, else the human account.
    ///
    /// A closed stdout (`| head`) is not an error: the reader has what it wanted.
    pub fn emit(&self, json: bool) -> io::Result<()> {
        let text = if json {
            serde_json::to_string_pretty(self).map_err(io::Error::other)? + "\n"
        } else {
            self.render()
        };
        if self.host.profile == "debug" {
            let _ = writeln!(
                io::stderr(),
                "{}: warning: debug build; its figures are not representative (use --release)",
                self.topic
            );
        }
        let mut out = io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    /// The human account: summary, host, an aligned table of measurements, checks, claims.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}: {}", self.topic, self.summary);
        let _ = writeln!(s, "host: {}", self.host.describe());
        if !self.params.is_empty() {
            let _ = writeln!(s, "params: {}", config_text(&self.params));
        }
        if !self.measurements.is_empty() {
            s.push('\n');
            let header = [
                "measurement",
                "variant",
                "mechanism",
                "config",
                "p50",
                "p99",
                "throughput",
                "CPU/op",
            ];
            let mut rows: Vec<[String; 8]> = vec![header.map(str::to_owned)];
            let ns = |v: Option<u64>| v.map_or_else(dash, |v| format_ns(v as f64));
            for m in &self.measurements {
                let figure = m.value.map_or_else(dash, |v| format_figure(v, &m.unit));
                let (p50, p99, value) = match m.kind {
                    Kind::Histogram => (ns(m.p50), ns(m.p99), dash()),
                    Kind::Value => (dash(), dash(), figure),
                };
                rows.push([
                    m.name.clone(),
                    m.variant.as_str().to_owned(),
                    m.mechanism.clone(),
                    config_text(&m.config),
                    p50,
                    p99,
                    value,
                    m.cpu_ns_per_op.map_or_else(dash, format_ns),
                ]);
            }
            table_into(&mut s, &rows);
        }
        if !self.checks.is_empty() {
            let _ = writeln!(s, "\nchecks");
            for c in &self.checks {
                let status = match c.status {
                    Status::Pass => "pass",
                    Status::Fail => "FAIL",
                    Status::Skip => "skip",
                };
                let _ = writeln!(s, "  {status}  {}", c.name);
                wrap_into(&mut s, &c.detail);
            }
        }
        if !self.claims.is_empty() {
            let _ = writeln!(s, "\nclaims");
            for c in &self.claims {
                let ratio = match (c.ratio, c.ratio_range) {
                    (Some(r), Some([lo, hi])) => format!(" x{r:.2} (interval x{lo:.2}..x{hi:.2})"),
                    _ => " (observed)".to_owned(),
                };
                let at = c
                    .placement
                    .as_deref()
                    .map_or_else(String::new, |p| format!(" [{}]", placement_text(p)));
                let _ = writeln!(s, "  {:<13} {}{at}{ratio}", c.verdict.as_str(), c.id);
                wrap_into(&mut s, &c.evidence);
            }
        }
        s
    }
}

/// Appends `rows` as an aligned table: text columns (the first four) to the left, figures to
/// the right.
fn table_into(out: &mut String, rows: &[[String; 8]]) {
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            let _ = if i < 4 {
                write!(line, "{cell:<w$}  ")
            } else {
                write!(line, "{cell:>w$}  ")
            };
        }
        let _ = writeln!(out, "  {}", line.trim_end());
    }
}

/// A placement as people say it: `one CPU`, `two CPUs`, `placed by the scheduler`.
pub fn placement_text(pin: &str) -> &'static str {
    match pin {
        "same" => "one CPU",
        "split" => "two CPUs",
        _ => "placed by the scheduler",
    }
}

/// Appends `text` wrapped at [`WRAP`] columns, each line indented under the item it explains.
pub fn wrap_into(out: &mut String, text: &str) {
    const INDENT: &str = "        ";
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && INDENT.len() + line.chars().count() + 1 + word.chars().count() > WRAP
        {
            let _ = writeln!(out, "{INDENT}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{INDENT}{line}");
    }
}

/// The width the human account's prose is wrapped to.
const WRAP: usize = 100;

/// A byte count as people say it: `64 B`, `4 KiB`, `32 MiB`, `1.50 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let decimals = if value.fract() == 0.0 { 0 } else { 2 };
    format!("{value:.decimals$} {}", UNITS[unit])
}

fn dash() -> String {
    "-".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Report {
        let mut r = Report::new("demo");
        r.summary = "a demo".to_owned();
        r.param("messages", 10);
        let mut lat = LatencyRecorder::new();
        for ns in [1000, 2000, 3000] {
            lat.record_ns(ns);
        }
        r.measure(Measurement::histogram(
            "round_trip",
            Variant::Process,
            "pipe",
            json!({"bytes": 64}),
            &lat,
            Some(5.0),
        ));
        r.measure(Measurement::value(
            "throughput",
            Variant::Thread,
            "channel",
            json!({"bytes": 65536}),
            "MiB/s",
            123.0,
            None,
        ));
        r.check("nothing lost", true, "10 of 10");
        r.skip("exotic", "ENOSYS");
        r
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = sample();
        let text = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert!(back.passed());
        // A field with nothing to say is left out, never written as null.
        assert!(
            !text.contains("null") && !text.contains("\"p50\":null"),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["measurements"][0]["p95"] = json!(1);
        assert!(serde_json::from_value::<Report>(v).is_err());
    }

    #[test]
    fn a_failed_check_fails_the_report() {
        let mut r = sample();
        r.check("broken", false, "1 lost");
        assert!(!r.passed());
        assert!(
            r.render().contains("FAIL  broken\n        1 lost\n"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn bytes_read_as_people_say_them() {
        assert_eq!(format_bytes(64), "64 B");
        assert_eq!(format_bytes(65536), "64 KiB");
        assert_eq!(format_bytes(32 << 20), "32 MiB");
        assert_eq!(format_bytes(3 << 29), "1.50 GiB");
    }

    #[test]
    fn long_details_wrap_under_their_item() {
        let mut out = String::new();
        wrap_into(&mut out, &"word ".repeat(60));
        assert!(out.lines().count() > 2);
        assert!(
            out.lines()
                .all(|l| l.starts_with("        word") && l.len() <= WRAP),
            "{out}"
        );
    }

    #[test]
    fn render_aligns_the_table() {
        let text = sample().render();
        // The table is the block of indented lines after the host line.
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("  measurement"))
            .take_while(|l| l.starts_with("  "))
            .collect();
        assert!(text.contains("params: messages=10"), "{text}");
        assert_eq!(rows.len(), 3, "{text}");
        let column =
            |row: &str, word: &str| row.find(word).unwrap_or_else(|| panic!("{word} in {row}"));
        assert_eq!(
            column(rows[0], "variant"),
            column(rows[1], "process"),
            "{text}"
        );
        assert_eq!(
            column(rows[1], "process"),
            column(rows[2], "thread"),
            "{text}"
        );
        assert!(
            rows[1].contains("2.00 us") && rows[1].contains("5 ns"),
            "{text}"
        );
        assert!(rows[2].contains("123 MiB/s"), "{text}");
    }
}
