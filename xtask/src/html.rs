//! `report.html` from a bench's summary, and the check that the page holds every plot with its
//! caption and axis labels and refers to nothing outside itself.

use std::fmt::Write as _;

use crate::claims::CLAIMS;
use anyhow::{Result, bail};
use labkit::Verdict;

use crate::plots;
use crate::summary::{self, Summary};
use crate::text::{
    capital, claim_words, figure_rows, headline, ratio_cell, reference_rows, run_verdicts, sizes,
    topic_text,
};

/// Table rows, a `<tr>` each, every cell escaped.
fn rows(out: &mut String, rows: &[Vec<String>]) {
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| format!("<td>{}</td>", esc(c))).collect();
        let _ = writeln!(out, "<tr>{}</tr>", cells.concat());
    }
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

/// Marks the page as loaded, counts script and resource errors, plots actually laid out and
/// derived figures shown with their formula and inputs,
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
  var derived = 0;
  document.querySelectorAll('li.decision').forEach(function (d) {
    var box = d.getBoundingClientRect();
    if (box.height > 0 && d.querySelector('.formula') && d.querySelector('li.input')) { derived += 1; }
  });
  document.body.dataset.decisionsShown = String(derived);
  document.body.dataset.height = String(document.documentElement.scrollHeight);
  document.body.dataset.ready = 'yes';
});
";

/// `report.html`: self-contained (inline SVG, style and script; no network).
pub fn page(s: &Summary) -> Result<String> {
    let plots = plots::all(s)?;
    let (decisions, missing) = crate::decisions::decisions(s);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Processes vs threads: bench {}</title>\n<style>{STYLE}</style>\n</head>\n\
         <body data-ready=\"no\" data-plots=\"{}\" data-decisions=\"{}\">\n\
         <script>{SCRIPT}</script>\n",
        esc(&s.created),
        plots.len(),
        decisions.len()
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
        "<h2>What this means on this machine</h2>\n<ul class=\"decisions\">"
    );
    for d in &decisions {
        let inputs: Vec<String> = (d.inputs.iter())
            .map(|(what, value)| {
                format!(
                    "<li class=\"input\"><code>{}</code> = {}</li>",
                    esc(what),
                    esc(value)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "<li class=\"decision\" data-decision=\"{}\"><strong>{}</strong> {}.<br>\
             <span class=\"formula\">Formula: {}.</span>\n<ul>{}</ul></li>",
            d.id,
            esc(&d.question),
            esc(&d.answer),
            esc(&d.formula),
            inputs.join("")
        );
    }
    for m in &missing {
        let _ = writeln!(out, "<li class=\"left-out\">Left out: {}.</li>", esc(m));
    }
    let _ = writeln!(out, "</ul>");
    if let Some(t) = crate::held::table(s) {
        let _ = writeln!(
            out,
            "<h2>Connections held at once (sockets)</h2>\n<p>{}</p>\n<table class=\"held\">\n<tr>{}</tr>",
            esc(&t.caption),
            t.header
                .iter()
                .map(|h| format!("<th>{}</th>", esc(h)))
                .collect::<String>()
        );
        rows(&mut out, &t.rows);
        let _ = writeln!(out, "</table>");
        if let Some(most) = t.most {
            let _ = writeln!(out, "<p class=\"most\">{}</p>", esc(&most));
        }
    }
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
        rows(&mut out, &reference_rows(s));
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
    rows(&mut out, &figure_rows(s));
    let _ = writeln!(out, "</table>\n</details>\n</body>\n</html>");
    Ok(out)
}

/// Every plot a bench of all topics draws.
pub const ALL_PLOTS: [&str; 9] = [
    "latency",
    "size",
    "creation",
    "fork-rss",
    "switch",
    "parallel",
    "cpu",
    "connections-memory",
    "connections-p99",
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
    // The derived figures: each there, each with its formula and at least one input.
    let decisions: Vec<_> = doc.select(&sel("li.decision")).collect();
    if decisions.is_empty() && doc.select(&sel("li.left-out")).next().is_none() {
        problems.push("no derived figure (What this means on this machine)".to_owned());
    }
    // A bench of every topic (every plot expected) gives every derived figure.
    let ids: Vec<&str> = (decisions.iter())
        .filter_map(|d| d.value().attr("data-decision"))
        .collect();
    for want in crate::decisions::ALL
        .iter()
        .filter(|_| !expected.is_empty())
    {
        if !ids.contains(want) {
            problems.push(format!("derived figure {want} is missing"));
        }
    }
    for d in decisions {
        let id = d.value().attr("data-decision").unwrap_or("(no id)");
        if d.select(&sel("span.formula")).next().is_none() {
            problems.push(format!("derived figure {id}: no formula"));
        }
        if d.select(&sel("li.input")).next().is_none() {
            problems.push(format!("derived figure {id}: no input"));
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
mod tests {
    use super::*;
    use crate::fixtures::sample;

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
        let no_formula = html.replacen("<span class=\"formula\">", "<span>", 1);
        assert!(check(&no_formula, &ALL_PLOTS).is_err(), "a formula removed");
    }
}
