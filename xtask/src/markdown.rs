//! `report.md` from a bench's summary: the ledger, the plots' captions, the reference, and
//! every figure.

use std::fmt::Write as _;

use crate::plots;
use crate::summary::{self, Summary};
use crate::text::{
    capital, claim_words, duration_text, figure_cell, headline, pin_text, ratio_cell, run_verdicts,
    sizes, topic_text,
};

fn md_cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
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
        let _ = writeln!(
            out,
            "| variant | placement | mean round trip (median of runs) |"
        );
        let _ = writeln!(out, "|---|---|---|");
        for r in &s.reference {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                r.variant,
                pin_text(&r.pin),
                duration_text(r.figure.median)
            );
        }
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
    let _ = writeln!(out, "| topic | measurement | config | figure |");
    let _ = writeln!(out, "|---|---|---|---|");
    for f in &s.figures {
        let _ = writeln!(
            out,
            "| {} | {}/{}/{} | {} | {} |",
            f.topic,
            f.name,
            f.variant,
            f.mechanism,
            md_cell(&labkit::report::config_text(&f.config)),
            figure_cell(f)
        );
    }
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
