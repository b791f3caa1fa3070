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

use crate::bench::{self, Options};
use crate::summary::{self, Finding, Summary};
use crate::text::{headline, ratio_text, run_verdicts, say, topic_text, verdict_letter};
use crate::{browser, html, markdown};

const USAGE: &str =
    "usage: cargo xtask report [--from DIR | --full | --quick | --runs N] [--repeat K] [--topics a,b]
       [--connections-up-to N] [TOPIC...]

Runs a bench (3 runs at default sizes, about a minute) and prints the claims ledger;
writes report.md, report.html and report.png into the bench folder.
  --from DIR    render a saved bench instead (a folder under target/lab/, or target/lab/latest)
  --full        the default bench: 5 runs
  --quick       the topics' --quick sizes (a smoke run: verdicts mean little)
  --runs N      runs of each topic
  --repeat K    K benches in a row, each reported as usual, then how many of the K verdicts
                of each finding agree, with its interval each time (from 2 to 20)
  --topics a,b  only these topics (as do TOPIC arguments)
  --connections-up-to N  sockets holds 10, 100 … connections up to N [default: 1000];
                10000 adds the count that tells which server models hold 10,000";

/// Runs of the bench `report` makes unless told otherwise.
const REPORT_RUNS: usize = 3;

pub fn run(args: &[String]) -> Result<bool> {
    let mut from: Option<PathBuf> = None;
    let mut full = false;
    let mut repeat = 1;
    let mut o = Options {
        runs: REPORT_RUNS,
        ..Options::default()
    };
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--from" => match it.next() {
                Some(dir) => {
                    let path = crate::compare::resolve(dir);
                    if !path.join("summary.json").is_file() {
                        usage(&format!("{dir}: not a bench folder (no summary.json)"));
                    }
                    from = Some(path);
                }
                None => usage("--from needs a bench folder"),
            },
            "--full" => full = true,
            "--repeat" => {
                repeat = match it.next().map(|v| v.parse::<usize>()) {
                    Some(Ok(k)) if (2..=20).contains(&k) => k,
                    _ => usage("--repeat takes a whole number from 2 to 20"),
                }
            }
            "-h" | "--help" => {
                say(USAGE);
                return Ok(true);
            }
            "--runs" | "--topics" | "--connections-up-to" => {
                rest.push(a.clone());
                rest.extend(it.next().cloned());
            }
            topic if !topic.starts_with('-') => o.topics.push(topic.to_owned()),
            _ => rest.push(a.clone()),
        }
    }
    if let Err(e) = bench::parse(&rest, &mut o) {
        usage(&e);
    }
    if full {
        if rest.iter().any(|a| a == "--runs") {
            usage("--full is the 5-run bench: give --full or --runs, not both");
        }
        o.runs = Options::default().runs;
    }
    if repeat > 1 {
        if from.is_some() {
            usage("--repeat runs new benches: give --from or --repeat, not both");
        }
        let topics = bench::known_topics(&o.topics).unwrap_or_else(|e| usage(&e));
        let mut summaries = Vec::new();
        for k in 1..=repeat {
            eprintln!("xtask report: bench {k} of {repeat}");
            let (dir, summary) = bench::bench(&o, &topics)?;
            let ledger = ledger_text(&summary);
            write_files(&dir, &summary, &ledger, false)?;
            summaries.push(summary);
        }
        say(stability_text(&summaries).trim_end());
        return Ok(summaries.iter().all(|s| s.problems.is_empty()));
    }
    let (dir, summary) = match from {
        Some(dir) => {
            if full || !rest.is_empty() || !o.topics.is_empty() {
                usage("--from renders a saved bench as it is: no other flags or topics");
            }
            let mut s = summary::load(&dir)?;
            // Checked again on reading: a saved bench may come from an older rule or by hand.
            for p in s.findings.iter().flat_map(Finding::contradictions) {
                if !s.problems.contains(&p) {
                    s.problems.push(p);
                }
            }
            (dir, s)
        }
        None => {
            let topics = bench::known_topics(&o.topics).unwrap_or_else(|e| usage(&e));
            bench::bench(&o, &topics)?
        }
    };
    let ledger = ledger_text(&summary);
    say(ledger.trim_end());
    let written = write_files(&dir, &summary, &ledger, false)?;
    say(&format!("\nWritten: {}", written.join(", ")));
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
        "Claims ledger for {}\nbench {}: {} run(s) of each topic at {} sizes; {}.\n",
        s.host.describe(),
        s.created,
        s.runs,
        if s.quick { "--quick" } else { "default" },
        summary::rule_text()
    );
    let mut counts = [0usize; 3];
    let mut with_evidence = 0;
    let listed = s.listed();
    for (i, claim) in listed.iter().enumerate() {
        if claim.beyond_the_seed && (i == 0 || !listed[i - 1].beyond_the_seed) {
            let _ = writeln!(
                out,
                "Beyond the seed (claims the topics make of their own):\n"
            );
        }
        let _ = writeln!(out, "{}: {}", claim.id, claim.words);
        let found = &claim.findings;
        if found.is_empty() {
            let _ = writeln!(
                out,
                "  no evidence in this bench (from: {})\n",
                claim.declared_by
            );
            continue;
        }
        let _ = writeln!(out, "  => {}", headline(found));
        with_evidence += 1;
        for f in found {
            counts[verdict_index(f.verdict)] += 1;
            let _ = writeln!(
                out,
                "  {:<20} {:<13} {}  runs: {}",
                topic_text(f),
                f.verdict.as_str(),
                ratio_text(f),
                run_verdicts(f)
            );
            labkit::report::wrap_into(&mut out, &f.evidence);
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{with_evidence} of {} claims have evidence; findings: {} hold, {} do not hold, {} inconclusive.",
        listed.len(),
        counts[0],
        counts[1],
        counts[2]
    );
    if !s.reference.is_empty() {
        let _ = writeln!(out, "\nReference, perf bench sched pipe (mean round trip):");
        for r in crate::text::reference_rows(s) {
            let _ = writeln!(out, "  {:<8} {:<32} {}", r[0], r[1], r[2]);
        }
    }
    out.push_str(&s.trouble_lines());
    out
}

/// How far each finding's verdict can be trusted here: over K benches in a row, how many of
/// the K verdicts agree with the most common one, and the interval each time.
pub fn stability_text(benches: &[Summary]) -> String {
    let k = benches.len();
    let mut ids: Vec<String> = Vec::new();
    for s in benches {
        for f in &s.findings {
            if !ids.contains(&f.id_text()) {
                ids.push(f.id_text());
            }
        }
    }
    let mut out = format!(
        "Stability over {k} benches ({}): per finding, how many verdicts agree (H holds, N does \
         not hold, I inconclusive, - no finding), then the interval each time.\n\n",
        benches
            .iter()
            .map(|s| s.created.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut steady = 0;
    let mut inconclusive = vec![0; k];
    for id in &ids {
        let found: Vec<Option<&Finding>> = benches
            .iter()
            .map(|s| s.findings.iter().find(|f| f.id_text() == *id))
            .collect();
        let letters: Vec<&str> = found
            .iter()
            .map(|f| f.map_or("-", |f| verdict_letter(f.verdict)))
            .collect();
        let most = ["H", "N", "I"]
            .iter()
            .map(|v| letters.iter().filter(|l| *l == v).count())
            .max()
            .unwrap_or(0);
        // Steady: the same verdict in at least four benches of five (80%, rounded up), so a
        // flip in one bench of two or three is not steady.
        if most * 5 >= 4 * k {
            steady += 1;
        }
        for (i, f) in found.iter().enumerate() {
            if f.is_some_and(|f| f.verdict == Verdict::Inconclusive) {
                inconclusive[i] += 1;
            }
        }
        let intervals: Vec<String> = found
            .iter()
            .map(|f| match f.and_then(|f| f.interval) {
                Some([lo, hi]) => format!("x{lo:.2}..x{hi:.2}"),
                None => "observed".to_owned(),
            })
            .collect();
        let _ = writeln!(
            out,
            "{most}/{k}  {}  {id}\n      {}",
            letters.join(" "),
            intervals.join("  ")
        );
    }
    let _ = writeln!(
        out,
        "\n{steady} of {} findings gave the same verdict in at least {} of {k} benches; \
         inconclusive per bench: {}",
        ids.len(),
        (4 * k).div_ceil(5),
        inconclusive
            .iter()
            .map(|n| format!("{n} of {}", ids.len()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

fn verdict_index(v: Verdict) -> usize {
    match v {
        Verdict::Holds => 0,
        Verdict::DoesNotHold => 1,
        Verdict::Inconclusive => 2,
    }
}

/// Writes the ledger, report.md, report.html (checked: every plot the bench has data for, or
/// with `strict` all seven) and its screenshot after the browser test; returns what was
/// written. Without `strict`, a missing or failing browser is a warning: the files stand.
fn write_files(dir: &Path, s: &Summary, ledger: &str, strict: bool) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        written.push(path.display().to_string());
        Ok(())
    };
    put("ledger.txt", ledger)?;
    put("report.md", &markdown::markdown(s))?;
    let page = html::page(s)?;
    let expected: &[&str] = if strict { &html::ALL_PLOTS } else { &[] };
    let plots = html::check(&page, expected)?;
    eprintln!(
        "xtask report: report.html holds {} plots, each with its caption and axis labels, and \
         refers to nothing outside itself",
        plots.len()
    );
    put("report.html", &page)?;
    let page = dir.join("report.html");
    if !strict && browser::find().is_none() {
        eprintln!(
            "xtask report: no screenshot: chromium is not installed (apt-get install chromium)"
        );
        return Ok(written);
    }
    match browser::test(&page) {
        Ok(seen) => {
            eprintln!("xtask report: browser: {seen}");
            written.push(dir.join("report.png").display().to_string());
        }
        Err(e) if !strict => eprintln!("xtask report: WARNING: browser test: {e:#}"),
        Err(e) => return Err(e.context("the browser test")),
    }
    Ok(written)
}

/// The report's stage of `cargo xtask ci`: a one-run quick bench of every topic, rendered by
/// `report`'s own code, strictly: the HTML test must find all nine plots (with captions and
/// axis labels, nothing external) and the browser test must pass (Chromium required).
pub fn ci_stage() -> Result<bool> {
    let o = Options {
        runs: 1,
        quick: true,
        ..Options::default()
    };
    let (dir, summary) = bench::bench(&o, &crate::workspace::topics(&[])?)?;
    let ledger = ledger_text(&summary);
    write_files(&dir, &summary, &ledger, true)?;
    for p in &summary.problems {
        eprintln!("xtask ci: PROBLEM {p}");
    }
    Ok(summary.problems.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::sample;

    /// Two benches that agree but for one finding: the table says which, and counts.
    #[test]
    fn stability_counts_agreeing_verdicts() {
        let a = sample();
        let mut b = a.clone();
        let i = b
            .findings
            .iter()
            .position(|f| f.verdict == Verdict::Holds)
            .expect("a finding that holds");
        b.findings[i].verdict = Verdict::Inconclusive;
        let text = stability_text(&[a.clone(), a.clone(), b]);
        let changed = b_id(&a, i);
        let line = text
            .lines()
            .find(|l| l.ends_with(&changed))
            .unwrap_or_else(|| panic!("{changed} in {text}"));
        assert!(line.starts_with("2/3  H H I"), "{line}");
        // Two of three is not steady (80% of three, rounded up, is three).
        let n = a.findings.len();
        assert!(
            text.contains(&format!(
                "{} of {n} findings gave the same verdict in at least 3",
                n - 1
            )),
            "{text}"
        );
    }

    fn b_id(s: &Summary, i: usize) -> String {
        s.findings[i].id_text()
    }

    /// A topic's own claim, declared in its Cargo.toml, is listed after the seed's, marked.
    #[test]
    fn a_claim_beyond_the_seed_is_listed_apart() {
        let mut s = sample();
        let own = crate::declared::OwnClaim {
            id: "pipes.fifo-by-name".to_owned(),
            statement: "a FIFO joins processes that share no descriptor".to_owned(),
        };
        s.topics[0].own.push(own);
        let ledger = ledger_text(&s);
        let at = ledger.find("Beyond the seed").expect("the section");
        assert!(
            ledger[at..].contains("pipes.fifo-by-name: a FIFO joins"),
            "{ledger}"
        );
        assert!(markdown::markdown(&s).contains("(beyond the seed)"));
        assert!(
            html::page(&s)
                .unwrap()
                .contains("data-claim=\"pipes.fifo-by-name\"")
        );
    }
}
