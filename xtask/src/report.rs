//! `cargo xtask report`: run every topic at its default sizes and print the claims ledger —
//! each claim of the seed, what every topic found about it on this machine, and the evidence.
//! Claims no landed topic speaks to are listed as "no evidence yet". The Reports and the ledger
//! are also written under `target/lab-report/`.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result};
use labkit::Verdict;
use labkit::claims::CLAIMS;
use labkit::report::{Basis, Claim, Report};

use crate::workspace::{self, Topic};

/// A default-size run that takes longer than this is hung.
const HANG_GUARD: Duration = Duration::from_secs(600);

pub fn run(only: &[String]) -> Result<bool> {
    let topics = workspace::topics(only)?;
    workspace::build_release(&topics)?;
    workspace::become_subreaper()?;
    let mut reports = Vec::new();
    let mut broken = Vec::new();
    for topic in &topics {
        eprintln!("xtask report: running {}", topic.name);
        match run_one(topic)? {
            Ok(report) => reports.push(report),
            Err(why) => broken.push(format!("{}: {why}", topic.name)),
        }
    }
    let ledger = ledger_text(&reports);
    let dir = write_files(&reports, &ledger)?;
    workspace::say(ledger.trim_end());
    for b in &broken {
        workspace::say(&format!("BROKEN {b}"));
    }
    workspace::say(&format!(
        "\nReports and the ledger are in {}",
        dir.display()
    ));
    Ok(broken.is_empty())
}

/// One topic's Report, or why there is none.
fn run_one(topic: &Topic) -> Result<Result<Report, String>> {
    let run = workspace::run_topic(topic, &["--json"], HANG_GUARD)?;
    if run.timed_out {
        return Ok(Err(format!(
            "hung: killed after {} s",
            HANG_GUARD.as_secs()
        )));
    }
    if !run.leftovers.is_empty() {
        return Ok(Err(format!("left behind {}", run.leftovers.join(", "))));
    }
    // Exit code 1 with a Report means a check failed: the Report says which, so keep it.
    match serde_json::from_str::<Report>(&run.stdout) {
        Ok(report) => Ok(Ok(report)),
        Err(e) => Ok(Err(format!(
            "exit {:?}, no Report ({e}): {}",
            run.code,
            run.last_error_line()
        ))),
    }
}

fn ledger_text(reports: &[Report]) -> String {
    let mut s = String::new();
    if let Some(r) = reports.first() {
        let _ = writeln!(s, "Claims ledger for {}\n", r.host.describe());
    }
    for r in reports {
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| c.status == labkit::report::Status::Fail)
            .map(|c| c.name.as_str())
            .collect();
        let _ = writeln!(s, "{}: {}", r.topic, r.summary);
        if !failed.is_empty() {
            let _ = writeln!(s, "  FAILED checks: {}", failed.join("; "));
        }
    }
    let mut counts = [0usize; 3];
    let mut with_evidence = 0;
    for info in CLAIMS {
        let _ = writeln!(s, "\n{}: {}", info.id, info.seed);
        let found: Vec<(&str, &Claim)> = reports
            .iter()
            .flat_map(|r| {
                r.claims
                    .iter()
                    .filter(|c| c.id == info.id)
                    .map(move |c| (r.topic.as_str(), c))
            })
            .collect();
        if found.is_empty() {
            let _ = writeln!(s, "  no evidence yet (from: {})", info.topics.join(", "));
            continue;
        }
        with_evidence += 1;
        for (topic, claim) in found {
            counts[match claim.verdict {
                Verdict::Holds => 0,
                Verdict::DoesNotHold => 1,
                Verdict::Inconclusive => 2,
            }] += 1;
            let basis = match (claim.basis, claim.ratio, claim.ratio_range) {
                (Basis::Measured, Some(r), Some([lo, hi])) => format!("x{r:.2} ({lo:.2}..{hi:.2})"),
                _ => "observed".to_owned(),
            };
            let _ = writeln!(s, "  {topic:<10} {:<13} {basis}", claim.verdict.as_str());
            labkit::report::wrap_into(&mut s, &claim.evidence);
        }
    }
    let _ = writeln!(
        s,
        "\n{with_evidence} of {} claims have evidence; findings: {} hold, {} do not hold, {} inconclusive.",
        CLAIMS.len(),
        counts[0],
        counts[1],
        counts[2]
    );
    s
}

fn write_files(reports: &[Report], ledger: &str) -> Result<std::path::PathBuf> {
    let dir = workspace::root().join("target").join("lab-report");
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    for r in reports {
        let path = dir.join(format!("{}.json", r.topic));
        let text = serde_json::to_string_pretty(r).context("serialise a Report")?;
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    let ledger_json: Vec<serde_json::Value> = CLAIMS
        .iter()
        .map(|info| {
            let evidence: Vec<serde_json::Value> = reports
                .iter()
                .flat_map(|r| {
                    r.claims.iter().filter(|c| c.id == info.id).map(move |c| serde_json::json!({ "topic": r.topic, "finding": c }))
                })
                .collect();
            serde_json::json!({ "id": info.id, "seed": info.seed, "topics": info.topics, "evidence": evidence })
        })
        .collect();
    let path = dir.join("ledger.json");
    std::fs::write(&path, serde_json::to_string_pretty(&ledger_json)?)
        .with_context(|| format!("write {}", path.display()))?;
    let path = dir.join("ledger.txt");
    std::fs::write(&path, ledger).with_context(|| format!("write {}", path.display()))?;
    Ok(dir)
}
