//! `cargo xtask compare A B`: two saved benches side by side (two machines, or before and
//! after a change). Per figure the ratio B/A of the medians, flagged where it moved beyond both
//! benches' spread (B's min..max and A's min..max do not overlap); per claim, whether the
//! verdict changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::summary::{self, Figure, Finding, Summary};
use crate::text::{say, table};
use crate::workspace;

const USAGE: &str = "usage: cargo xtask compare A B [--all]

A and B are bench folders (target/lab/<timestamp>, or just the timestamp; `latest` works).
Prints per figure the ratio B/A of the medians, flagging those that moved beyond both
benches' spread, and per claim whether the verdict changed.
  --all   list every figure, not only those that moved";

pub fn run(args: &[String]) -> Result<bool> {
    let mut all = false;
    let mut dirs = Vec::new();
    for a in args {
        match a.as_str() {
            "--all" => all = true,
            "-h" | "--help" => {
                say(USAGE);
                return Ok(true);
            }
            flag if flag.starts_with('-') => usage(&format!("unknown flag {flag}")),
            dir => {
                let path = resolve(dir);
                if !path.join("summary.json").is_file() {
                    usage(&format!("{dir}: not a bench folder (no summary.json)"));
                }
                dirs.push(path);
            }
        }
    }
    let [a, b] = dirs.as_slice() else {
        usage("compare needs two bench folders");
    };
    let (sa, sb) = (summary::load(a)?, summary::load(b)?);
    say(&text(&sa, &sb, all));
    Ok(true)
}

fn usage(why: &str) -> ! {
    eprintln!("xtask compare: {why}\n\n{USAGE}");
    std::process::exit(2);
}

/// A folder as given, or a bench's name under `target/lab/`.
pub fn resolve(dir: &str) -> PathBuf {
    let p = Path::new(dir);
    if p.join("summary.json").exists() {
        return p.to_owned();
    }
    workspace::root().join("target").join("lab").join(dir)
}

/// How a figure moved from A to B.
#[derive(Debug, PartialEq)]
pub enum Move {
    /// The two spreads overlap: no change beyond the noise.
    Within,
    Up,
    Down,
}

pub fn moved(a: &Figure, b: &Figure) -> Move {
    if b.figure.min > a.figure.max {
        Move::Up
    } else if b.figure.max < a.figure.min {
        Move::Down
    } else {
        Move::Within
    }
}

pub fn text(a: &Summary, b: &Summary, all: bool) -> String {
    let mut out = format!(
        "A: bench {} ({} run(s){}), {}\nB: bench {} ({} run(s){}), {}\n",
        a.created,
        a.runs,
        if a.quick { ", --quick" } else { "" },
        a.host.describe(),
        b.created,
        b.runs,
        if b.quick { ", --quick" } else { "" },
        b.host.describe()
    );
    if a.quick != b.quick {
        out.push_str(
            "(one bench used --quick sizes and the other default sizes: most figures moved for that)\n",
        );
    }
    if a.runs < 2 || b.runs < 2 {
        out.push_str(
            "(a bench of one run has no spread: every difference counts as moved; use --runs 3 or more)\n",
        );
    }
    let by_id: BTreeMap<String, &Figure> = a.figures.iter().map(|f| (f.id(), f)).collect();
    let mut rows = vec![vec![
        "figure".to_owned(),
        "A median".to_owned(),
        "B median".to_owned(),
        "B/A".to_owned(),
        "".to_owned(),
    ]];
    let (mut up, mut down, mut same, mut only_b) = (0, 0, 0, 0);
    for fb in &b.figures {
        let Some(fa) = by_id.get(&fb.id()) else {
            only_b += 1;
            continue;
        };
        let m = moved(fa, fb);
        match m {
            Move::Up => up += 1,
            Move::Down => down += 1,
            Move::Within => same += 1,
        }
        if m == Move::Within && !all {
            continue;
        }
        let flag = match m {
            Move::Up => "MOVED UP",
            Move::Down => "MOVED DOWN",
            Move::Within => "",
        };
        let ratio = fb.figure.median / fa.figure.median;
        rows.push(vec![
            fb.id(),
            value(fa),
            value(fb),
            if ratio.is_finite() {
                format!("x{ratio:.2}")
            } else {
                "-".to_owned()
            },
            flag.to_owned(),
        ]);
    }
    // Ids are unique within a bench: what A has beyond the shared ones is A's alone.
    let only_a = a.figures.len() - (up + down + same);
    out.push_str(&format!(
        "\nFigures: {} in both: {up} moved up, {down} moved down beyond both spreads, {same} within; \
         {only_a} only in A, {only_b} only in B.\n",
        up + down + same
    ));
    if rows.len() > 1 {
        out.push_str(&table(&rows));
    }

    out.push_str("\nClaims:\n");
    let mut changed = 0;
    let mut kept = 0;
    let mut only_in_a: BTreeMap<String, &Finding> =
        a.findings.iter().map(|f| (f.id_text(), f)).collect();
    for fb in &b.findings {
        let id = fb.id_text();
        let Some(fa) = only_in_a.remove(&id) else {
            out.push_str(&format!("  only in B: {id}: {}\n", fb.verdict.as_str()));
            continue;
        };
        if fa.verdict == fb.verdict {
            kept += 1;
            continue;
        }
        changed += 1;
        out.push_str(&format!(
            "  CHANGED {id}: {} {} -> {} {}\n",
            fa.verdict.as_str(),
            crate::text::ratio_text(fa),
            fb.verdict.as_str(),
            crate::text::ratio_text(fb)
        ));
    }
    for (id, fa) in only_in_a {
        out.push_str(&format!("  only in A: {id}: {}\n", fa.verdict.as_str()));
    }
    out.push_str(&format!("  {changed} verdict(s) changed, {kept} kept.\n"));
    out
}

fn value(f: &Figure) -> String {
    if f.unit == "ns" {
        crate::text::duration_text(f.figure.median)
    } else {
        format!("{:.3} {}", f.figure.median, f.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::Spread;
    use labkit::Verdict;

    fn spread(median: f64, min: f64, max: f64) -> Spread {
        Spread {
            median,
            min,
            max,
            n: 3,
        }
    }

    #[test]
    fn a_change_is_flagged_only_beyond_both_spreads_and_verdict_changes_are_listed() {
        let a = crate::fixtures::sample();
        let mut b = a.clone();
        b.created = "after".to_owned();
        // One figure doubled (beyond both spreads), one nudged inside the spread.
        let mut a = a;
        a.figures[0].figure = spread(100.0, 90.0, 110.0);
        b.figures[0].figure = spread(200.0, 190.0, 210.0);
        a.figures[1].figure = spread(100.0, 90.0, 110.0);
        b.figures[1].figure = spread(105.0, 95.0, 115.0);
        assert_eq!(moved(&a.figures[0], &b.figures[0]), Move::Up);
        assert_eq!(moved(&a.figures[1], &b.figures[1]), Move::Within);
        assert_eq!(moved(&b.figures[0], &a.figures[0]), Move::Down);
        let flipped = b
            .findings
            .iter()
            .position(|f| f.verdict == Verdict::Holds)
            .unwrap();
        b.findings[flipped].verdict = Verdict::Inconclusive;
        let out = text(&a, &b, false);
        assert!(out.contains("1 moved up"), "{out}");
        assert!(out.contains("x2.00"), "{out}");
        assert!(out.contains("MOVED UP"), "{out}");
        assert!(out.contains(&format!("CHANGED {}: holds", b.findings[flipped].id_text())));
        assert!(out.contains("1 verdict(s) changed"), "{out}");
        // The same bench against itself: nothing moved, nothing changed.
        let same = text(&a, &a, false);
        assert!(same.contains("0 moved up, 0 moved down"), "{same}");
        assert!(same.contains("0 verdict(s) changed"), "{same}");
    }
}
