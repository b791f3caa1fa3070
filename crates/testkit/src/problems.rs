//! What a Report must be beyond what serde enforces: its schema, every histogram whole, no
//! measurement twice, every measured claim consistent with its own figures. Topics' tests,
//! `cargo xtask verify` and every bench apply the same checks.

use std::collections::BTreeSet;

use labkit::report::{Basis, Claim, Kind, Report, SCHEMA};
use labkit::verdict::Verdict;
use serde_json::Value;

/// Everything about the Report's shape that serde alone cannot enforce.
pub fn problems(report: &Report) -> Vec<String> {
    let mut problems = Vec::new();
    if report.schema != SCHEMA {
        problems.push(format!("schema is {}, expected {SCHEMA}", report.schema));
    }
    if report.summary.trim().is_empty() {
        problems.push("the summary is empty".to_owned());
    }
    let mut seen = BTreeSet::new();
    for m in &report.measurements {
        let identity = format!("{} {}", m.key(), Value::Object(m.config.clone()));
        if !seen.insert(identity.clone()) {
            problems.push(format!("measurement {identity} appears twice"));
        }
        match m.kind {
            Kind::Histogram => {
                let figures = [m.min, m.p50, m.p90, m.p99, m.max];
                if m.samples.is_none() || m.mean.is_none() || figures.iter().any(Option::is_none) {
                    problems.push(format!("histogram {} lacks a percentile", m.key()));
                } else if !figures.windows(2).all(|w| w[0] <= w[1]) {
                    problems.push(format!("histogram {} has unordered percentiles", m.key()));
                }
                if m.value.is_some() {
                    problems.push(format!("histogram {} also has a value", m.key()));
                }
            }
            Kind::Value => {
                if !m.value.is_some_and(f64::is_finite) {
                    problems.push(format!("value {} has no finite value", m.key()));
                }
            }
        }
    }
    for c in &report.claims {
        if c.basis == Basis::Measured {
            problems.extend(contradictions(c));
            for key in &c.compares {
                if report.find(key).is_none() {
                    problems.push(format!("claim {} compares unknown {key}", c.id));
                }
            }
        }
    }
    problems
}

/// Where a measured claim's figures and verdict disagree: its verdict, ratio or interval
/// not what its test gives, or its evidence not quoting the figures that decided. Empty
/// for an observed claim.
pub fn contradictions(claim: &Claim) -> Vec<String> {
    let mut out = Vec::new();
    let Some(test) = &claim.test else {
        if claim.basis == Basis::Measured {
            out.push(format!("measured claim {} has no test", claim.id));
        }
        return out;
    };
    let j = test.judge();
    if j.verdict != claim.verdict {
        out.push(format!(
            "claim {} says {} but its figures give {}",
            claim.id,
            claim.verdict.as_str(),
            j.verdict.as_str()
        ));
    }
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() <= 1e-9 * b.abs());
    let [lo, hi] = j.interval;
    let range = claim.ratio_range.unwrap_or([f64::NAN; 2]);
    if !close(claim.ratio, j.ratio)
        || !close(Some(range[0]), lo)
        || !close(Some(range[1]), hi)
        || !close(claim.confidence, j.confidence)
    {
        out.push(format!(
            "claim {}: ratio, interval or confidence differ from its figures' (x{:.2}, \
             x{lo:.2}..x{hi:.2}, {:.3})",
            claim.id, j.ratio, j.confidence
        ));
    }
    // The figures quoted (the median block pair's) must lie on the side of the verdict.
    let (f, o) = test.median_pair().unwrap_or((f64::NAN, f64::NAN));
    let oriented = match test.better {
        labkit::verdict::Better::Lower => o / f,
        labkit::verdict::Better::Higher => f / o,
    };
    let side_ok = match claim.verdict {
        Verdict::Holds => oriented > test.margin,
        Verdict::DoesNotHold => oriented < test.margin,
        Verdict::Inconclusive => true,
    };
    if !side_ok {
        out.push(format!(
            "claim {} says {} but its quoted figures ({} {}, {} {}) point the other way",
            claim.id,
            claim.verdict.as_str(),
            test.favoured.label,
            labkit::verdict::format_figure(f, &test.unit),
            test.other.label,
            labkit::verdict::format_figure(o, &test.unit),
        ));
    }
    if claim.evidence != test.evidence() {
        out.push(format!(
            "claim {}: the evidence is not the one its figures give",
            claim.id
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use labkit::{LatencyRecorder, Measurement, Test, Variant};
    use serde_json::json;

    /// A sound Report: one round-trip histogram of three samples.
    fn sample() -> Report {
        let mut latency = LatencyRecorder::new();
        [1000, 2000, 3000]
            .into_iter()
            .for_each(|ns| latency.record_ns(ns));
        let config = json!({"bytes": 64});
        let m = Measurement::histogram(
            "round_trip",
            Variant::Process,
            "pipe",
            config,
            &latency,
            None,
        );
        let mut r = Report::new("demo");
        r.measure(m);
        r.conclude("a demo");
        r
    }

    #[test]
    fn a_sound_report_has_no_problem() {
        let r = sample();
        assert!(problems(&r).is_empty(), "{:?}", problems(&r));
    }

    #[test]
    fn problems_find_a_duplicate_and_a_dangling_claim() {
        let mut r = sample();
        r.measurements.push(r.measurements[0].clone());
        let test = Test::new("x", "ns", labkit::Better::Lower, "faster")
            .favoured("a", &[1.0; 6])
            .other("b", &[2.0; 6]);
        r.claims.push(Claim::measured(
            "x",
            test,
            vec!["nothing/process/here".into()],
        ));
        let problems = problems(&r);
        assert!(
            problems.iter().any(|p| p.contains("appears twice")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown nothing/process/here")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_claim_whose_figures_contradict_it_is_a_problem() {
        let test = Test::new("stream", "MiB/s", labkit::Better::Higher, "faster")
            .favoured("threads", &[8704.0; 6])
            .other("processes", &[12970.0; 6]);
        let mut r = sample();
        r.claims
            .push(Claim::measured("x", test.clone(), Vec::new()));
        assert!(problems(&r).is_empty(), "{:?}", problems(&r));
        // Said to hold, with figures that say the opposite: the shape check catches it.
        r.claims[0].verdict = Verdict::Holds;
        let problems = problems(&r);
        assert!(
            problems.iter().any(|p| p.contains("point the other way")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("its figures give")),
            "{problems:?}"
        );
        // Evidence not written from the figures: caught too.
        let mut c = Claim::measured("x", test, Vec::new());
        c.evidence = "threads were faster".into();
        assert!(
            contradictions(&c).iter().any(|p| p.contains("evidence")),
            "{:?}",
            contradictions(&c)
        );
    }
}
