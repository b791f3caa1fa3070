//! How findings and figures are written for people, the same in the terminal ledger,
//! report.md, report.html, the plots and `compare`; and how text reaches the terminal (`say`,
//! an aligned `table`).

use std::fmt::Write as _;

use labkit::Verdict;

use crate::summary::{Figure, Finding, Listed, Summary};

/// `pipes (one CPU)`: the topic, and the placement where the finding has one.
pub fn topic_text(f: &Finding) -> String {
    match &f.placement {
        Some(p) => format!("{} ({})", f.topic, labkit::report::placement_text(p)),
        None => f.topic.clone(),
    }
}

/// A claim's findings in one line that hides no disagreement: "holds in pipes (one CPU) and
/// sockets; does not hold in shm (two CPUs)", or "holds in all 4 findings".
pub fn headline(found: &[&Finding]) -> String {
    let verdicts = [Verdict::Holds, Verdict::DoesNotHold, Verdict::Inconclusive];
    if let [only] = verdicts
        .iter()
        .filter(|v| found.iter().any(|f| f.verdict == **v))
        .collect::<Vec<_>>()
        .as_slice()
    {
        let word = verdict_words(**only);
        return if found.len() == 1 {
            format!("{word} in {}", topic_text(found[0]))
        } else {
            format!("{word} in all {} findings", found.len())
        };
    }
    let parts: Vec<String> = verdicts
        .iter()
        .filter_map(|v| {
            // "sockets x3" rather than "sockets, sockets, sockets".
            let mut where_: Vec<(String, usize)> = Vec::new();
            for t in found
                .iter()
                .filter(|f| f.verdict == *v)
                .map(|f| topic_text(f))
            {
                match where_.iter_mut().find(|(w, _)| *w == t) {
                    Some((_, n)) => *n += 1,
                    None => where_.push((t, 1)),
                }
            }
            let where_: Vec<String> = where_
                .into_iter()
                .map(|(t, n)| if n > 1 { format!("{t} x{n}") } else { t })
                .collect();
            (!where_.is_empty()).then(|| format!("{} in {}", verdict_words(*v), where_.join(", ")))
        })
        .collect();
    parts.join("; ")
}

fn verdict_words(v: Verdict) -> &'static str {
    match v {
        Verdict::Holds => "holds",
        Verdict::DoesNotHold => "does not hold",
        Verdict::Inconclusive => "inconclusive",
    }
}

/// `H H I`: each counted run's own verdict, and the runs left out for a failed check.
pub fn run_verdicts(f: &Finding) -> String {
    let mut text = f
        .run_verdicts
        .iter()
        .map(|v| verdict_letter(*v))
        .collect::<Vec<_>>()
        .join(" ");
    if !f.left_out.is_empty() {
        let runs: Vec<String> = f.left_out.iter().map(usize::to_string).collect();
        text.push_str(&format!(
            " (left out, a check failed: run {})",
            runs.join(", ")
        ));
    }
    text
}

pub fn pin_text(pin: &str) -> &'static str {
    match pin {
        "same" => "both on one CPU",
        "split" => "on two CPUs",
        _ => "placed by the scheduler",
    }
}

pub fn verdict_letter(v: Verdict) -> &'static str {
    match v {
        Verdict::Holds => "H",
        Verdict::DoesNotHold => "N",
        Verdict::Inconclusive => "I",
    }
}

/// `x2.10 (95% x1.90..x2.40, 18 pairs)`, or `observed` for a yes/no claim.
pub fn ratio_text(f: &Finding) -> String {
    match (f.ratio, f.interval, f.confidence) {
        (Some(r), Some([lo, hi]), Some(c)) => format!(
            "x{r:.2} ({:.0}% x{lo:.2}..x{hi:.2}, {} pairs)",
            100.0 * c,
            f.pairs()
        ),
        _ if f.basis == labkit::report::Basis::Measured => "no figures".to_owned(),
        _ => "observed".to_owned(),
    }
}

/// `6.60 µs`, as the topics print durations.
pub fn duration_text(ns: f64) -> String {
    labkit::report::format_ns(ns)
}

/// One line per finding: verdict, median ratio and range over runs.
pub fn findings_table(s: &Summary) -> String {
    let mut rows = vec![vec![
        "claim".to_owned(),
        "topic".to_owned(),
        "verdict".to_owned(),
        "ratio (median pair, interval, pairs)".to_owned(),
    ]];
    for f in &s.findings {
        rows.push(vec![
            f.id.clone(),
            topic_text(f),
            f.verdict.as_str().to_owned(),
            ratio_text(f),
        ]);
    }
    table(&rows)
}

/// The sizes a bench ran at, in words.
pub fn sizes(s: &Summary) -> &'static str {
    if s.quick {
        "--quick sizes (a smoke run: figures and verdicts mean little)"
    } else {
        "default sizes"
    }
}

/// A finding's ratio for a table cell of report.md and report.html.
pub fn ratio_cell(f: &Finding) -> String {
    ratio_text(f)
}

/// A figure's median with its spread, in its unit.
pub fn figure_cell(f: &Figure) -> String {
    let text = |v: f64| {
        if f.unit == "ns" {
            duration_text(v)
        } else {
            format!("{} {}", three_digits(v), f.unit)
        }
    };
    let mut s = text(f.figure.median);
    if f.figure.n > 1 {
        let _ = write!(s, " ({}..{})", text(f.figure.min), text(f.figure.max));
    }
    if let Some(p99) = f.p99 {
        let _ = write!(s, ", p99 {}", text(p99.median));
    }
    s
}

/// The reference table of a bench, a row per run of perf: variant, placement, mean round trip
/// (median of runs).
pub fn reference_rows(s: &Summary) -> Vec<Vec<String>> {
    (s.reference.iter())
        .map(|r| {
            let mean = duration_text(r.figure.median);
            vec![r.variant.clone(), pin_text(&r.pin).to_owned(), mean]
        })
        .collect()
}

/// Every figure of a bench, a row each: topic, measurement, config, figure.
pub fn figure_rows(s: &Summary) -> Vec<Vec<String>> {
    (s.figures.iter())
        .map(|f| {
            let key = format!("{}/{}/{}", f.name, f.variant, f.mechanism);
            let config = labkit::report::config_text(&f.config);
            vec![f.topic.clone(), key, config, figure_cell(f)]
        })
        .collect()
}

/// A number with about three significant digits (at most two decimals).
pub fn three_digits(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A claim's words, marked when it is beyond the seed.
pub fn claim_words(claim: &Listed<'_>) -> String {
    if claim.beyond_the_seed {
        format!("{} (beyond the seed)", claim.words)
    } else {
        claim.words.clone()
    }
}

/// The sentence with its first letter upper case.
pub fn capital(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Prints to stdout, ending quietly if stdout is closed (`cargo xtask report | head`).
pub fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .is_err()
    {
        std::process::exit(0);
    }
}

/// A plain aligned table, first column left, the rest too; for summaries.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str("  ");
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
