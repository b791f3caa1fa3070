//! `cargo xtask report`: the claims ledger for this machine. Runs a bench (three runs at the
//! topics' default sizes; `--full` for the bench's default five, `--quick` for a smoke run),
//! or reads a saved one (`--from DIR`), then prints every claim of the seed with the verdict
//! across runs, the ratio's median and spread, and the evidence; and writes `report.md`,
//! a self-contained `report.html` with plots, and a screenshot of it (headless Chromium, when
//! installed) into the bench folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use labkit::Verdict;
use labkit::claims::CLAIMS;

use crate::bench::{self, Options};
use crate::summary::{self, Finding, Summary};
use crate::{browser, html, workspace};

const USAGE: &str =
    "usage: cargo xtask report [--from DIR | --full | --quick | --runs N] [--topics a,b] [TOPIC...]

Runs a bench (3 runs at default sizes, about a minute) and prints the claims ledger;
writes report.md, report.html and report.png into the bench folder.
  --from DIR    render a saved bench instead (a folder under target/lab/, or target/lab/latest)
  --full        the default bench: 5 runs
  --quick       the topics' --quick sizes (a smoke run: verdicts mean little)
  --runs N      runs of each topic
  --topics a,b  only these topics (as do TOPIC arguments)";

/// Runs of the bench `report` makes unless told otherwise.
const REPORT_RUNS: usize = 3;

pub fn run(args: &[String]) -> Result<bool> {
    let mut from: Option<PathBuf> = None;
    let mut o = Options {
        runs: REPORT_RUNS,
        ..Options::default()
    };
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--from" => match it.next() {
                Some(dir) => from = Some(PathBuf::from(dir)),
                None => usage("--from needs a bench folder"),
            },
            "--full" => o.runs = Options::default().runs,
            "-h" | "--help" => {
                workspace::say(USAGE);
                return Ok(true);
            }
            topic if !topic.starts_with('-') => o.topics.push(topic.to_owned()),
            _ => rest.push(a.clone()),
        }
        if a == "--runs" || a == "--topics" {
            if let Some(v) = it.next() {
                rest.push(v.clone());
            }
        }
    }
    if let Err(e) = bench::parse(&rest, &mut o) {
        usage(&e);
    }
    let (dir, summary) = match from {
        Some(dir) => {
            let s = summary::load(&dir)?;
            (dir, s)
        }
        None => bench::bench(&o)?,
    };
    let ledger = ledger_text(&summary);
    workspace::say(ledger.trim_end());
    let written = write_files(&dir, &summary, &ledger)?;
    workspace::say(&format!("\nWritten: {}", written.join(", ")));
    Ok(summary.problems.is_empty())
}

fn usage(why: &str) -> ! {
    eprintln!("xtask report: {why}\n\n{USAGE}");
    std::process::exit(2);
}

/// The terminal ledger: each claim of the seed, each topic's finding across runs.
pub fn ledger_text(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Claims ledger for {}\nbench {}: {} run(s) of each topic at {} sizes; a verdict across runs \
         holds only when every run's ratio lies beyond 1 by 3% on the claimed side.\n",
        s.host.describe(),
        s.created,
        s.runs,
        if s.quick { "--quick" } else { "default" }
    );
    let mut counts = [0usize; 3];
    let mut with_evidence = 0;
    for info in CLAIMS {
        let _ = writeln!(out, "{}: {}", info.id, info.seed);
        let found: Vec<&Finding> = s.findings.iter().filter(|f| f.id == info.id).collect();
        if found.is_empty() {
            let _ = writeln!(
                out,
                "  no evidence in this bench (from: {})\n",
                info.topics.join(", ")
            );
            continue;
        }
        with_evidence += 1;
        for f in found {
            counts[verdict_index(f.verdict)] += 1;
            let _ = writeln!(
                out,
                "  {:<10} {:<13} {}  runs: {}",
                f.topic,
                f.verdict.as_str(),
                bench::ratio_text(f),
                run_verdicts(f)
            );
            labkit::report::wrap_into(&mut out, &f.evidence);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{with_evidence} of {} claims have evidence; findings: {} hold, {} do not hold, {} inconclusive.",
        CLAIMS.len(),
        counts[0],
        counts[1],
        counts[2]
    );
    if !s.reference.is_empty() {
        let _ = writeln!(out, "\nReference, perf bench sched pipe (mean round trip):");
        for r in &s.reference {
            let _ = writeln!(
                out,
                "  {:<8} {:<32} {}",
                r.variant,
                pin_text(&r.pin),
                html::duration_text(r.figure.median)
            );
        }
    }
    for p in &s.problems {
        let _ = writeln!(out, "PROBLEM {p}");
    }
    out
}

fn verdict_index(v: Verdict) -> usize {
    match v {
        Verdict::Holds => 0,
        Verdict::DoesNotHold => 1,
        Verdict::Inconclusive => 2,
    }
}

/// `H H I`: each run's own verdict.
pub fn run_verdicts(f: &Finding) -> String {
    f.run_verdicts
        .iter()
        .map(|v| match v {
            Verdict::Holds => "H",
            Verdict::DoesNotHold => "N",
            Verdict::Inconclusive => "I",
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn pin_text(pin: &str) -> &'static str {
    match pin {
        "same" => "both on one CPU",
        "split" => "on two CPUs",
        _ => "placed by the scheduler",
    }
}

/// Writes the ledger, report.md, report.html (checked) and, when a browser is installed, its
/// screenshot after the browser test; returns what was written.
fn write_files(dir: &Path, s: &Summary, ledger: &str) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        written.push(path.display().to_string());
        Ok(())
    };
    put("ledger.txt", ledger)?;
    put("report.md", &html::markdown(s))?;
    let page = html::page(s)?;
    html::check(&page, &[])?;
    put("report.html", &page)?;
    let page = dir.join("report.html");
    if browser::find().is_none() {
        eprintln!(
            "xtask report: no screenshot: chromium is not installed (apt-get install chromium)"
        );
        return Ok(written);
    }
    let seen = browser::test(&page)?;
    eprintln!("xtask report: report.html {seen}");
    written.push(dir.join("report.png").display().to_string());
    Ok(written)
}

/// The report's stage of `cargo xtask ci`: a one-run quick bench of every topic rendered as
/// the report is, then the HTML test (every plot, caption and axis label; nothing external)
/// and the browser test (headless Chromium loads it with no error, every plot laid out, and
/// takes the screenshot). Chromium is required here.
pub fn ci_stage() -> Result<bool> {
    let o = Options {
        runs: 1,
        quick: true,
        topics: Vec::new(),
    };
    let (dir, summary) = bench::bench(&o)?;
    let ledger = ledger_text(&summary);
    std::fs::write(dir.join("report.md"), html::markdown(&summary))?;
    let page = html::page(&summary)?;
    let found = html::check(&page, &html::ALL_PLOTS)?;
    let path = dir.join("report.html");
    std::fs::write(&path, &page).with_context(|| format!("write {}", path.display()))?;
    std::fs::write(dir.join("ledger.txt"), &ledger)?;
    eprintln!(
        "xtask ci: report.html holds all {} plots with captions and axis labels, nothing external",
        found.len()
    );
    let seen = browser::test(&path)?;
    eprintln!("xtask ci: browser: {seen}");
    for p in &summary.problems {
        eprintln!("xtask ci: PROBLEM {p}");
    }
    Ok(summary.problems.is_empty())
}
