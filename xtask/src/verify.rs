//! `cargo xtask verify`: every topic, `--quick --json`, checked from the outside.
//!
//! For each topic: it exits 0 within the hang guard; its stdout parses as the typed Report
//! (unknown fields refused) with no shape problems; no check failed; it has at least one
//! `process` and one `thread` measurement; its claims are those its `Cargo.toml` declares
//! (seed ids, or its own with a statement), each with a finding; and nothing new is left in /dev/shm, the temp dir or the ledger, and no process is
//! left behind. Then each side alone (`--variant process`, `--variant thread`): exit 0, a
//! Report with no shape problem and no failed check, measurements of that side only (or a
//! baseline), nothing left behind.

use std::time::Duration;

use anyhow::Result;
use labkit::Variant;
use labkit::report::{Report, Status};

use crate::claims;

use crate::leftovers::Snapshot;
use crate::text::{say, table};
use crate::workspace::{self, Topic};

/// A quick run that takes longer than this is hung.
const HANG_GUARD: Duration = Duration::from_secs(120);

pub fn run(only: &[String]) -> Result<bool> {
    let topics = workspace::topics(only)?;
    workspace::build_release(&topics)?;
    workspace::become_subreaper()?;
    let header = [
        "topic",
        "exit",
        "checks",
        "measurements",
        "claims",
        "time",
        "result",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    let mut failures = Vec::new();
    for topic in &topics {
        let (row, problems) = verify_topic(topic)?;
        rows.push(row);
        failures.extend(problems.into_iter().map(|p| format!("{}: {p}", topic.name)));
    }
    say(&format!(
        "verify: {} topic(s), --quick --json\n{}",
        topics.len(),
        table(&rows)
    ));
    for f in &failures {
        say(&format!("  - {f}"));
    }
    // The plain closing line CI reads: one count per topic.
    let failed = rows
        .iter()
        .skip(1)
        .filter(|r| r.last().is_some_and(|s| s != "ok"))
        .count();
    say(&format!(
        "verify: {} passed, {failed} failed",
        topics.len() - failed
    ));
    Ok(failures.is_empty())
}

fn verify_topic(topic: &Topic) -> Result<(Vec<String>, Vec<String>)> {
    let before = Snapshot::take();
    let run = workspace::run_topic(topic, &["--quick", "--json"], HANG_GUARD)?;
    let mut problems: Vec<String> = run
        .leftovers
        .iter()
        .map(|l| format!("left behind {l}"))
        .collect();
    for leftover in Snapshot::take().new_since(&before) {
        problems.push(format!("left behind {leftover}"));
    }
    if run.timed_out {
        problems.push(format!(
            "still running after {} s (hang guard); killed",
            HANG_GUARD.as_secs()
        ));
    }
    match (run.code, run.signal) {
        (Some(0), _) => {}
        (Some(code), _) => problems.push(format!("exit code {code}: {}", run.last_error_line())),
        (None, Some(sig)) => {
            problems.push(format!("killed by signal {sig}: {}", run.last_error_line()))
        }
        (None, None) => problems.push("ended without a status".to_owned()),
    }
    let exit = run.code.map_or_else(
        || format!("sig {}", run.signal.unwrap_or(0)),
        |c| c.to_string(),
    );
    let time = format!("{:.1} s", run.elapsed.as_secs_f64());
    let report: Report = match serde_json::from_str(&run.stdout) {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("stdout is not a Report: {e}"));
            let row = vec![
                topic.name.clone(),
                exit,
                "-".into(),
                "-".into(),
                "-".into(),
                time,
                "FAIL".into(),
            ];
            return Ok((row, problems));
        }
    };
    problems.extend(check_report(topic, &report));
    for side in [Variant::Process, Variant::Thread] {
        problems.extend(verify_one_side(topic, side)?);
    }
    let count = |s: Status| report.checks.iter().filter(|c| c.status == s).count();
    let row = vec![
        topic.name.clone(),
        exit,
        format!(
            "{} pass, {} fail, {} skip",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Skip)
        ),
        report.measurements.len().to_string(),
        report.claims.len().to_string(),
        time,
        if problems.is_empty() { "ok" } else { "FAIL" }.to_owned(),
    ];
    Ok((row, problems))
}

/// A run of one side alone: it must pass and measure only that side (or a baseline).
fn verify_one_side(topic: &Topic, side: Variant) -> Result<Vec<String>> {
    let before = Snapshot::take();
    let args = ["--quick", "--json", "--variant", side.as_str()];
    let run = workspace::run_topic(topic, &args, HANG_GUARD)?;
    let what = format!("--variant {}", side.as_str());
    let mut problems: Vec<String> = run
        .leftovers
        .iter()
        .chain(&Snapshot::take().new_since(&before))
        .map(|l| format!("{what}: left behind {l}"))
        .collect();
    if run.code != Some(0) {
        problems.push(format!(
            "{what}: exit {:?} (signal {:?}): {}",
            run.code,
            run.signal,
            run.last_error_line()
        ));
        return Ok(problems);
    }
    match serde_json::from_str::<Report>(&run.stdout) {
        Ok(report) => {
            problems.extend(
                testkit::problems(&report)
                    .into_iter()
                    .map(|p| format!("{what}: {p}")),
            );
            for c in report.checks.iter().filter(|c| c.status == Status::Fail) {
                problems.push(format!("{what}: check failed: {}", c.name));
            }
            for m in &report.measurements {
                // Tasks run on threads: `--variant thread` runs them too.
                let task = side == Variant::Thread && m.variant == Variant::Task;
                if m.variant != side && m.variant != Variant::Serial && !task {
                    problems.push(format!("{what}: measured {}", m.key()));
                }
            }
        }
        Err(e) => problems.push(format!("{what}: stdout is not a Report: {e}")),
    }
    Ok(problems)
}

/// What a Report must hold, beyond its shape.
fn check_report(topic: &Topic, report: &Report) -> Vec<String> {
    let mut problems = testkit::problems(report);
    if report.topic != topic.name {
        problems.push(format!("the Report names topic `{}`", report.topic));
    }
    for c in report.checks.iter().filter(|c| c.status == Status::Fail) {
        problems.push(format!("check failed: {}: {}", c.name, c.detail));
    }
    for variant in [Variant::Process, Variant::Thread] {
        if !report.measurements.iter().any(|m| m.variant == variant) {
            problems.push(format!("no `{}` measurement", variant.as_str()));
        }
    }
    // What the topic declares in its Cargo.toml ([package.metadata.lab]) is what it must
    // give evidence for, and all it may.
    let declared = &topic.declared;
    if declared.claims.is_empty() && declared.own.is_empty() {
        problems
            .push("declares no claim ([package.metadata.lab] claims in its Cargo.toml)".to_owned());
    }
    for id in &declared.claims {
        if claims::claim(id).is_none() {
            problems.push(format!(
                "declares `{id}`, which is not one of the seed's claims"
            ));
        }
    }
    for own in &declared.own {
        if claims::claim(&own.id).is_some() || own.statement.trim().is_empty() {
            problems.push(format!(
                "its own claim `{}` needs an id outside the seed's and a statement",
                own.id
            ));
        }
    }
    let ids: Vec<&String> = declared
        .claims
        .iter()
        .chain(declared.own.iter().map(|o| &o.id))
        .collect();
    for claim in &report.claims {
        if !ids.contains(&&claim.id) {
            problems.push(format!(
                "claim `{}` is not declared in its Cargo.toml ([package.metadata.lab])",
                claim.id
            ));
        }
    }
    // A declared claim with no finding would leave the ledger's row empty without a word.
    for id in ids {
        if !report.claims.iter().any(|c| c.id == *id) {
            problems.push(format!(
                "claim `{id}` is declared but the run made no finding for it"
            ));
        }
    }
    problems
}
