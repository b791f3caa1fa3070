//! `report.md` and `report.html` from a bench's summary, and the check that the HTML holds
//! every plot with its caption and axis labels and refers to nothing outside itself.

use std::fmt::Write as _;

use crate::claims::CLAIMS;
use anyhow::{Result, bail};
use labkit::Verdict;

use crate::plots;
use crate::summary::{self, Figure, Finding, Summary};
use crate::text::{duration_text, headline, pin_text, ratio_text, run_verdicts, topic_text};

fn sizes(s: &Summary) -> &'static str {
    if s.quick {
        "--quick sizes (a smoke run: figures and verdicts mean little)"
    } else {
        "default sizes"
    }
}

fn ratio_cell(f: &Finding) -> String {
    ratio_text(f)
}

/// A figure's median with its spread, in its unit.
fn figure_cell(f: &Figure) -> String {
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

fn three_digits(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A claim's words, marked when it is beyond the seed.
fn claim_words(claim: &summary::Listed<'_>) -> String {
    if claim.beyond_the_seed {
        format!("{} (beyond the seed)", claim.words)
    } else {
        claim.words.clone()
    }
}

/// The sentence with its first letter upper case.
fn capital(text: &str) -> String {
    let mut c = text.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

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

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Holds => "holds",
        Verdict::DoesNotHold => "not",
        Verdict::Inconclusive => "unsure",
    }
}

const STYLE: &str = "
body { font-family: sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.holds { background: #e3f4e3; } td.not { background: #fbe3e3; } td.unsure { background: #f6f0d8; }
figure { margin: 2em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-style: italic; margin-top: 0.4em; }
code { font-size: 0.95em; }
";

/// Marks the page as loaded, counts script and resource errors and plots actually laid out,
/// for the browser test (`--dump-dom` shows the body's data attributes).
const SCRIPT: &str = "
window.addEventListener('error', function () {
  document.body.dataset.errors = String(Number(document.body.dataset.errors || '0') + 1);
}, true);
window.addEventListener('load', function () {
  var shown = 0;
  document.querySelectorAll('figure.plot svg').forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    if (box.width > 100 && box.height > 100) { shown += 1; }
  });
  document.body.dataset.plotsShown = String(shown);
  document.body.dataset.height = String(document.documentElement.scrollHeight);
  document.body.dataset.ready = 'yes';
});
";

/// `report.html`: self-contained (inline SVG, style and script; no network).
pub fn page(s: &Summary) -> Result<String> {
    let plots = plots::all(s)?;
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Processes vs threads: bench {}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body data-ready=\"no\" data-plots=\"{}\">\n<script>{SCRIPT}</script>\n",
        esc(&s.created),
        plots.len()
    );
    let _ = writeln!(
        out,
        "<h1>Processes vs threads: the claims on this machine</h1>\n<p>Bench <code>{}</code>: {} \
         run(s) of each topic at {}.<br>Host: {}</p>\n<p>{}. <em>runs</em> lists each run's own \
         verdict (H holds, N does not hold, I inconclusive).</p>",
        esc(&s.created),
        s.runs,
        esc(sizes(s)),
        esc(&s.host.describe()),
        esc(&capital(&summary::rule_text()))
    );
    let _ = writeln!(
        out,
        "<h2>Claims ledger</h2>\n<table class=\"ledger\">\n<tr><th>claim</th><th>topic</th>\
         <th>verdict</th><th>ratio, median pair (interval, pairs)</th><th>runs</th>\
         <th>evidence (pooled runs)</th></tr>"
    );
    for claim in s.listed() {
        let found = &claim.findings;
        let rows = found.len().max(1);
        let head = format!(
            "<td rowspan=\"{rows}\" data-claim=\"{id}\"><code>{id}</code><br>{}{}</td>",
            esc(&claim_words(&claim)),
            if found.is_empty() {
                String::new()
            } else {
                format!("<br><strong>{}</strong>", esc(&headline(found)))
            },
            id = claim.id,
        );
        if found.is_empty() {
            let _ = writeln!(
                out,
                "<tr>{head}<td colspan=\"5\">no evidence in this bench (from {})</td></tr>",
                esc(&claim.declared_by)
            );
        }
        for (i, f) in found.iter().enumerate() {
            let _ = writeln!(
                out,
                "<tr>{}<td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if i == 0 { head.as_str() } else { "" },
                esc(&topic_text(f)),
                verdict_class(f.verdict),
                f.verdict.as_str(),
                esc(&ratio_cell(f)),
                run_verdicts(f),
                esc(&f.evidence)
            );
        }
    }
    let _ = writeln!(out, "</table>\n<h2>Plots</h2>");
    for p in &plots {
        let _ = writeln!(
            out,
            "<figure class=\"plot\" id=\"plot-{}\" data-x-label=\"{}\" data-y-label=\"{}\">\n\
             <h3>{}</h3>\n{}\n<figcaption>{}</figcaption>\n</figure>",
            p.id,
            esc(&p.x_label),
            esc(&p.y_label),
            esc(&p.title),
            p.svg,
            esc(&p.caption)
        );
    }
    if !s.reference.is_empty() {
        let _ = writeln!(
            out,
            "<h2>Reference: perf bench sched pipe</h2>\n<table>\n<tr><th>variant</th>\
             <th>placement</th><th>mean round trip (median of runs)</th></tr>"
        );
        for r in &s.reference {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.variant),
                pin_text(&r.pin),
                duration_text(r.figure.median)
            );
        }
        let _ = writeln!(out, "</table>");
    }
    for (heading, items) in [("Notes", &s.notes), ("Problems", &s.problems)] {
        if !items.is_empty() {
            let _ = writeln!(out, "<h2>{heading}</h2>\n<ul>");
            for item in items {
                let _ = writeln!(out, "<li>{}</li>", esc(item));
            }
            let _ = writeln!(out, "</ul>");
        }
    }
    let _ = writeln!(
        out,
        "<h2>Every figure</h2>\n<details><summary>{} figures, median over runs \
         (min..max)</summary>\n<table>\n<tr><th>topic</th><th>measurement</th><th>config</th>\
         <th>figure</th></tr>",
        s.figures.len()
    );
    for f in &s.figures {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}/{}/{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.topic),
            esc(&f.name),
            esc(&f.variant),
            esc(&f.mechanism),
            esc(&labkit::report::config_text(&f.config)),
            esc(&figure_cell(f))
        );
    }
    let _ = writeln!(out, "</table>\n</details>\n</body>\n</html>");
    Ok(out)
}

/// Every plot a bench of all topics draws.
pub const ALL_PLOTS: [&str; 7] = [
    "latency", "size", "creation", "fork-rss", "switch", "parallel", "cpu",
];

/// What the HTML test requires: every plot expected is there as a `<figure>` with an inline
/// SVG, a caption, and both axis labels (with a unit in parentheses) drawn in the SVG; every
/// claim of the seed is in the ledger; nothing refers outside the page. Returns the plots found.
pub fn check(html: &str, expected: &[&str]) -> Result<Vec<String>> {
    use scraper::{Html, Selector};
    let sel = |s: &str| Selector::parse(s).expect("a valid selector");
    let doc = Html::parse_document(html);
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for fig in doc.select(&sel("figure.plot")) {
        let id = fig.value().attr("id").unwrap_or("(no id)").to_owned();
        let Some(svg) = fig.select(&sel("svg")).next() else {
            problems.push(format!("{id}: no inline svg"));
            continue;
        };
        let caption: String = fig
            .select(&sel("figcaption"))
            .next()
            .map(|c| c.text().collect::<String>().trim().to_owned())
            .unwrap_or_default();
        if caption.is_empty() {
            problems.push(format!("{id}: no caption"));
        }
        let texts: Vec<String> = svg
            .select(&sel("text"))
            .map(|t| t.text().collect::<String>().trim().to_owned())
            .collect();
        for axis in ["data-x-label", "data-y-label"] {
            let label = fig.value().attr(axis).unwrap_or("");
            if label.is_empty() || !label.contains('(') || !label.contains(')') {
                problems.push(format!("{id}: {axis} {label:?} names no unit"));
            } else if !texts.iter().any(|t| t == label) {
                problems.push(format!(
                    "{id}: axis label {label:?} is not drawn in the svg"
                ));
            }
        }
        let marks = svg.select(&sel("rect, circle, polyline, path")).count();
        if marks < 5 {
            problems.push(format!("{id}: only {marks} marks drawn"));
        }
        found.push(id.trim_start_matches("plot-").to_owned());
    }
    for want in expected {
        if !found.iter().any(|f| f == want) {
            problems.push(format!("plot {want} is missing"));
        }
    }
    for info in CLAIMS {
        let cell = format!("td[data-claim=\"{}\"]", info.id);
        if doc.select(&sel(&cell)).next().is_none() {
            problems.push(format!("claim {} is not in the ledger", info.id));
        }
    }
    let external = |v: &str| {
        let v = v.trim().to_ascii_lowercase();
        v.starts_with("http:") || v.starts_with("https:") || v.starts_with("//")
    };
    for el in doc.select(&sel("*")) {
        let name = el.value().name();
        if matches!(
            name,
            "link" | "iframe" | "img" | "object" | "embed" | "image"
        ) {
            problems.push(format!("<{name}> element: the page must be self-contained"));
        }
        // attrs() gives local names, so xlink:href is seen as href too.
        for (attr, value) in el.value().attrs() {
            if matches!(attr, "src" | "href" | "action" | "srcset") && !value.starts_with('#') {
                problems.push(format!(
                    "<{name} {attr}={value:?}>: refers outside the page"
                ));
            }
            if attr == "style" && (value.contains("url(") || external(value)) {
                problems.push(format!("<{name} style={value:?}>: refers outside the page"));
            }
        }
    }
    for style in doc.select(&sel("style")) {
        let css: String = style.text().collect();
        if css.contains("@import") || css.contains("url(") {
            problems.push("a <style> imports or loads something".to_owned());
        }
    }
    if !problems.is_empty() {
        bail!("report.html: {}", problems.join("; "));
    }
    Ok(found)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::summary;

    /// A summary from the example Reports the tests keep (every topic, as verify saw them).
    pub(crate) fn sample() -> Summary {
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
        let mut topics: Vec<summary::Declared> = Vec::new();
        for (_, r) in reports.iter().filter(|(main, _)| *main) {
            let mut claims: Vec<String> = r.claims.iter().map(|c| c.id.clone()).collect();
            claims.dedup();
            topics.push(summary::Declared {
                topic: r.topic.clone(),
                claims,
                own: Vec::new(),
            });
        }
        let (figures, findings) = crate::gather::gather(&reports);
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

    #[test]
    fn the_page_has_every_plot_captioned_and_labelled_and_nothing_external() {
        let s = sample();
        let html = page(&s).unwrap();
        let found = check(&html, &ALL_PLOTS).unwrap();
        assert_eq!(found.len(), ALL_PLOTS.len(), "{found:?}");
        // Markup in the data is escaped, not interpreted.
        assert!(html.contains("a &lt;problem&gt;"));
    }

    #[test]
    fn the_check_fails_on_an_external_reference_or_a_missing_label() {
        let html = page(&sample()).unwrap();
        let with_link = html.replace(
            "</head>",
            "<link rel=\"stylesheet\" href=\"https://cdn.example/x.css\"></head>",
        );
        assert!(check(&with_link, &ALL_PLOTS).is_err());
        let with_img = html.replace("<h2>Plots</h2>", "<h2>Plots</h2><img src=\"x.png\">");
        assert!(check(&with_img, &ALL_PLOTS).is_err());
        let first = plots::all(&sample()).unwrap().remove(0);
        let unlabelled = html.replace(&format!(">\n{}\n<", esc(&first.x_label)), "><");
        assert_ne!(unlabelled, html);
        assert!(check(&unlabelled, &ALL_PLOTS).is_err(), "x label removed");
        assert!(check(&html, &["no-such-plot"]).is_err());
    }

    /// A topic's own claim, declared in its Cargo.toml, is listed after the seed's, marked.
    #[test]
    fn a_claim_beyond_the_seed_is_listed_apart() {
        let mut s = sample();
        let own = summary::OwnClaim {
            id: "pipes.fifo-by-name".to_owned(),
            statement: "a FIFO joins processes that share no descriptor".to_owned(),
        };
        s.topics[0].own.push(own);
        let ledger = crate::report::ledger_text(&s);
        let at = ledger.find("Beyond the seed").expect("the section");
        assert!(
            ledger[at..].contains("pipes.fifo-by-name: a FIFO joins"),
            "{ledger}"
        );
        assert!(markdown(&s).contains("(beyond the seed)"));
        assert!(
            page(&s)
                .unwrap()
                .contains("data-claim=\"pipes.fifo-by-name\"")
        );
    }

    #[test]
    fn markdown_has_every_claim() {
        let md = markdown(&sample());
        for info in CLAIMS {
            assert!(md.contains(&format!("`{}`", info.id)), "{}", info.id);
        }
        assert!(md.contains("a <problem> \\| with markup"));
    }
}
