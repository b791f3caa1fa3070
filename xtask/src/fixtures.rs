//! Test fixtures several modules' tests share: a bench summary made from the example Reports
//! the tests keep (`xtask/tests/data`).

use crate::declared::Declared;
use crate::gather::gather;
use crate::summary::{self, Summary};

/// A summary from the example Reports the tests keep (every topic, as verify saw them).
pub fn sample() -> Summary {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut reports = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("xtask/tests/data") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            continue; // A saved bench (see `summary::tests`), not a Report.
        }
        let text = std::fs::read_to_string(&path).expect("a Report");
        let mut r: labkit::Report = serde_json::from_str(&text).expect("a valid Report");
        // `pipes-bytes-4096.json`: an extra point of a series, as bench keeps it.
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("-bytes-") {
            r.measurements.retain(|m| m.name == "round_trip");
        }
        reports.push((!name.contains('-'), r));
    }
    reports.sort_by(|a, b| a.1.topic.cmp(&b.1.topic));
    // What each topic declares: the claims its Report makes.
    let mut topics: Vec<Declared> = Vec::new();
    for (_, r) in reports.iter().filter(|(main, _)| *main) {
        let mut claims: Vec<String> = r.claims.iter().map(|c| c.id.clone()).collect();
        claims.dedup();
        topics.push(Declared {
            topic: r.topic.clone(),
            claims,
            own: Vec::new(),
        });
    }
    let (figures, findings) = gather(&reports);
    Summary {
        schema: summary::SCHEMA,
        created: "2026-11-28T00-00-00Z".to_owned(),
        runs: 1,
        quick: true,
        host: summary::BenchHost {
            cpu_model: "test <cpu> & co".to_owned(),
            cpus: 2,
            cpus_allowed: vec![0, 1],
            kernel: "6.1".to_owned(),
            rustc: "rustc 1.95".to_owned(),
            thp: "madvise".to_owned(),
            governor: "n/a".to_owned(),
        },
        jobs: Vec::new(),
        figures,
        findings,
        reference: Vec::new(),
        problems: vec!["a <problem> | with markup".to_owned()],
        notes: vec!["a note".to_owned()],
        topics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Finding;

    #[test]
    fn the_example_reports_make_a_bench_with_no_contradiction() {
        let s = sample();
        let measured = s.findings.iter().filter(|f| f.test.is_some()).count();
        assert!(measured >= 10, "{measured} measured findings");
        let found: Vec<String> = s
            .findings
            .iter()
            .flat_map(Finding::contradictions)
            .collect();
        assert!(found.is_empty(), "{found:?}");
    }
}
