//! sockets' connections step across a bench: for each server model and count of connections
//! held at once, its requests per second, p99 and memory per connection; or the limit that
//! stopped it short of that count (a skipped check of the topic's Report, kept as a note).

use labkit::report::{Report, Status};

use crate::summary::{Figure, Summary};
use crate::text::duration_text;

/// The count the report says which models hold.
pub const MOST: u64 = 10_000;

/// The server models, in the order sockets runs them.
pub const MODELS: [&str; 5] = [
    "fork-per-connection",
    "thread-per-connection",
    "prefork",
    "thread-pool",
    "async",
];

/// The start of the note for a skipped check of sockets named `check` ("<model> holds N
/// connections"): the bench writes it, the table reads it.
fn skip_head(check: &str) -> String {
    format!("sockets: {check}: skipped, ")
}

/// A note per count a model was skipped at ("sockets: <model> holds N connections: skipped,
/// <the limit>"), once each, from the topic's main runs.
pub fn skipped(reports: &[(bool, Report)]) -> Vec<String> {
    let mut notes: Vec<String> = Vec::new();
    let checks = (reports.iter())
        .filter(|(main, r)| *main && r.topic == "sockets")
        .flat_map(|(_, r)| &r.checks)
        .filter(|c| c.status == Status::Skip && c.name.ends_with(" connections"));
    for c in checks {
        let head = skip_head(&c.name);
        if !notes.iter().any(|n| n.starts_with(&head)) {
            notes.push(format!("{head}{}", c.detail));
        }
    }
    notes
}

/// The table: a header (model, then each count), and a row per model.
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Which models held [`MOST`] connections and which did not, if it was asked for.
    pub most: Option<String>,
    /// What the table shows, one paragraph.
    pub caption: String,
}

/// The connections step's figures, if the bench ran it.
pub fn table(s: &Summary) -> Option<Table> {
    fn held<'a>(s: &'a Summary, name: &'a str) -> impl Iterator<Item = &'a Figure> + 'a {
        (s.figures.iter()).filter(move |f| f.topic == "sockets" && f.name == name)
    }
    let count = |f: &Figure| f.config_f64("connections").map(|c| c as u64);
    let skip_note = |model: &str, n: u64| {
        let head = skip_head(&format!("{model} holds {n} connections"));
        (s.notes.iter()).find_map(|note| note.strip_prefix(&head).map(str::to_owned))
    };
    let mut counts: Vec<u64> = held(s, "held_requests_per_s").filter_map(count).collect();
    counts.extend(s.notes.iter().filter_map(|n| {
        let rest = n.strip_prefix("sockets: ")?;
        let (_, n) = rest.split_once(" holds ")?;
        n.split_once(" connections: skipped")?.0.parse::<u64>().ok()
    }));
    counts.sort_unstable();
    counts.dedup();
    if counts.is_empty() {
        return None;
    }
    let find = |name: &'static str, model: &str, n: u64| -> Option<&Figure> {
        held(s, name).find(|f| f.mechanism == model && count(f) == Some(n))
    };
    let mut rows = Vec::new();
    let (mut holds, mut not) = (Vec::new(), Vec::new());
    for model in MODELS {
        let mut row = vec![model.to_owned()];
        for &n in &counts {
            let rate = find("held_requests_per_s", model, n);
            let p99 = find("held_request", model, n).and_then(|f| f.p99.as_ref());
            let kib = find("held_pss_per_connection", model, n);
            let skipped = skip_note(model, n);
            let cell = match (rate, p99, kib, &skipped) {
                (Some(r), Some(p), Some(k), _) => format!(
                    "{:.0} req/s, p99 {}, {:.1} KiB a connection",
                    r.figure.median,
                    duration_text(p.median),
                    k.figure.median
                ),
                (_, _, _, Some(why)) => format!("skipped: {why}"),
                _ => "-".to_owned(),
            };
            if n == MOST {
                match (rate, skipped) {
                    (Some(_), _) => holds.push(model.to_owned()),
                    (None, Some(why)) => not.push(format!("{model} ({why})")),
                    (None, None) => {}
                }
            }
            row.push(cell);
        }
        rows.push(row);
    }
    let mut header = vec!["server model".to_owned()];
    header.extend(counts.iter().map(|n| format!("{n} connections")));
    let most = counts.contains(&MOST).then(|| {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        format!(
            "Held {MOST} connections here: {}. Did not: {}.",
            list(&holds),
            list(&not)
        )
    });
    let in_flight = (held(s, "held_requests_per_s").filter_map(|f| f.config_f64("in_flight")))
        .fold(0.0, f64::max);
    let caption = format!(
        "Every server model holding N connections at once, each open for the whole block and \
         every one served in each block, from a separate client process with {in_flight:.0} \
         requests in flight (as many as there are connections, if fewer); memory is the PSS the \
         server and its children grew by over the idle server, per connection (socket buffers \
         are the kernel's, not in it); the median over runs.{}",
        if counts.contains(&MOST) {
            ""
        } else {
            " `cargo xtask report --connections-up-to 10000` adds 10,000 connections."
        }
    );
    Some(Table {
        header,
        rows,
        most,
        caption,
    })
}
