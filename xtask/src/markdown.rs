//! `report.md` from a bench's summary: the ledger, the plots' captions, the reference, and
//! every figure.

use std::fmt::Write as _;

use crate::plots;
use crate::summary::{self, Summary};
use crate::text::{
    capital, claim_words, figure_rows, headline, ratio_cell, reference_rows, run_verdicts, sizes,
    topic_text,
};

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A Markdown table: the header, its rule, a line per row (cells escaped).
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| md_cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

/// `report.md`: the ledger, the plots' captions, the reference, and every figure.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Processes vs threads: the claims on this machine\n");
    let _ = writeln!(
        out,
        "Bench `{}`: {} run(s) of each topic at {}.\n\nHost: {}\n",
        s.created,
        s.runs,
        sizes(s),
        s.host.describe()
    );
    let _ = writeln!(
        out,
        "{}. `runs` lists each run's own verdict (H holds, N does not hold, I inconclusive).\n",
        capital(&summary::rule_text())
    );
    let (decisions, missing) = crate::decisions::decisions(s);
    let _ = writeln!(out, "## What this means on this machine\n");
    for d in &decisions {
        let _ = writeln!(out, "- **{}** {}.  ", d.question, d.answer);
        let _ = writeln!(out, "  Formula: {}.  ", d.formula);
        let inputs: Vec<String> = (d.inputs.iter())
            .map(|(what, value)| format!("`{what}` = {value}"))
            .collect();
        let _ = writeln!(out, "  From: {}.", inputs.join("; "));
    }
    for m in &missing {
        let _ = writeln!(out, "- Left out: {m}.");
    }
    let _ = writeln!(out);
    if let Some(t) = crate::held::table(s) {
        let _ = writeln!(
            out,
            "## Connections held at once (sockets)\n\n{}\n",
            t.caption
        );
        let header: Vec<&str> = t.header.iter().map(String::as_str).collect();
        table(&mut out, &header, &t.rows);
        let _ = writeln!(out);
        if let Some(most) = t.most {
            let _ = writeln!(out, "{most}\n");
        }
    }
    let _ = writeln!(out, "## Claims ledger\n");
    let _ = writeln!(
        out,
        "| claim | topic | verdict | ratio, median pair (interval, pairs) | runs | evidence (pooled runs) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for claim in s.listed() {
        let (id, words, found) = (&claim.id, claim_words(&claim), &claim.findings);
        if !found.is_empty() {
            let _ = writeln!(
                out,
                "| `{id}` {} | **{}** | | | | |",
                md_cell(&words),
                md_cell(&headline(found))
            );
        }
        if found.is_empty() {
            let _ = writeln!(
                out,
                "| `{id}` {} | — | no evidence in this bench | | | from {} |",
                md_cell(&words),
                claim.declared_by
            );
        }
        for f in found {
            let _ = writeln!(
                out,
                "| `{id}` {} | {} | **{}** | {} | {} | {} |",
                md_cell(&words),
                topic_text(f),
                f.verdict.as_str(),
                ratio_cell(f),
                run_verdicts(f),
                md_cell(&f.evidence)
            );
        }
    }
    let _ = writeln!(out, "\n## Plots (in report.html)\n");
    match plots::all(s) {
        Ok(plots) => {
            for p in plots {
                let _ = writeln!(out, "- **{}**: {}", p.title, p.caption);
            }
        }
        Err(e) => {
            let _ = writeln!(out, "- the plots could not be drawn: {e:#}");
        }
    }
    if !s.reference.is_empty() {
        let _ = writeln!(out, "\n## Reference: perf bench sched pipe\n");
        let header = ["variant", "placement", "mean round trip (median of runs)"];
        table(&mut out, &header, &reference_rows(s));
    }
    for (heading, items) in [("Notes", &s.notes), ("Problems", &s.problems)] {
        if !items.is_empty() {
            let _ = writeln!(out, "\n## {heading}\n");
            for item in items {
                let _ = writeln!(out, "- {}", md_cell(item));
            }
        }
    }
    let _ = writeln!(out, "\n## Every figure (median over runs, min..max)\n");
    let header = ["topic", "measurement", "config", "figure"];
    table(&mut out, &header, &figure_rows(s));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::CLAIMS;
    use crate::fixtures::sample;

    #[test]
    fn markdown_has_every_claim() {
        let md = markdown(&sample());
        for info in CLAIMS {
            assert!(md.contains(&format!("`{}`", info.id)), "{}", info.id);
        }
        assert!(md.contains("a <problem> \\| with markup"));
    }
}
