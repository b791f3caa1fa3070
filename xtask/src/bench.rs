//! `cargo xtask bench`: every topic run R times (alternating topics, so drift on a shared
//! machine spreads over all of them), a few extra runs that give the plotted series their other
//! points (round trip vs message size, spinning vs blocking), and `perf bench sched pipe` as an
//! independent reference. Everything lands in `target/lab/<timestamp>/`: the raw Reports under
//! `reports/`, and `summary.json` with the host, every figure across runs and every claim's
//! verdict across runs (see [`crate::summary`]).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use labkit::report::{Measurement, Report};

use crate::summary::{self, BenchHost, Job, Reference, Spread, Summary};
use crate::text::say;
use crate::workspace::{self, Topic};

const USAGE: &str =
    "usage: cargo xtask bench [--runs N] [--quick] [--topics a,b] [--connections-up-to N]

Runs every topic N times and saves the Reports and a summary under target/lab/<timestamp>/.
  --runs N      runs of each topic [default: 5, at most 100]
  --quick       the topics' --quick sizes (a smoke run: figures and verdicts mean little)
  --topics a,b  only these topics
  --connections-up-to N  sockets holds 10, 100 … connections up to N [default: 1000]";

/// A topic run at its default size that takes longer than this is hung.
const HANG_GUARD: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct Options {
    pub runs: usize,
    pub quick: bool,
    pub topics: Vec<String>,
    /// sockets' connections step goes up to this many (its own default if `None`).
    pub connections_up_to: Option<u64>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            runs: 5,
            quick: false,
            topics: Vec::new(),
            connections_up_to: None,
        }
    }
}

/// Parses bench's flags; `report` takes the same ones.
pub fn parse(args: &[String], o: &mut Options) -> Result<(), String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                let v = it.next().ok_or("--runs needs a number")?;
                let n: usize = v
                    .parse()
                    .map_err(|_| format!("--runs {v}: not a whole number"))?;
                if !(1..=100).contains(&n) {
                    return Err(format!("--runs {n}: from 1 to 100"));
                }
                o.runs = n;
            }
            "--quick" => o.quick = true,
            "--connections-up-to" => {
                let v = it.next().ok_or("--connections-up-to needs a number")?;
                let n = v
                    .parse()
                    .map_err(|_| format!("--connections-up-to {v}: a number"))?;
                o.connections_up_to = Some(n);
            }
            "--topics" => {
                let v = it.next().ok_or("--topics needs a list, as in pipes,shm")?;
                let list: Vec<String> = v
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect();
                if list.is_empty() {
                    return Err("--topics needs a list, as in pipes,shm".to_owned());
                }
                o.topics.extend(list);
            }
            "-h" | "--help" => {
                say(USAGE);
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result<bool> {
    let mut o = Options::default();
    let topics = match parse(args, &mut o).and_then(|()| known_topics(&o.topics)) {
        Ok(topics) => topics,
        Err(e) => {
            eprintln!("xtask bench: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let (dir, summary) = bench(&o, &topics)?;
    say(&crate::text::findings_table(&summary));
    let trouble = summary.trouble_lines();
    if !trouble.is_empty() {
        say(trouble.trim_end());
    }
    say(&format!("\nThe bench is in {}", dir.display()));
    Ok(summary.problems.is_empty())
}

/// The topics `names` selects (all of them for none), or the usage error naming every topic.
pub fn known_topics(names: &[String]) -> Result<Vec<Topic>, String> {
    let all = workspace::topics(&[]).map_err(|e| format!("{e:#}"))?;
    for n in names {
        if !all.iter().any(|t| &t.name == n) {
            return Err(format!(
                "no topic {n}: the topics are {}",
                all.iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(all
        .into_iter()
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .collect())
}

/// An extra run of a topic for another point of a plotted series; only the measurements
/// `keep` selects are taken (the topic's own run gives the rest, and its claims).
struct Sweep {
    topic: &'static str,
    label: &'static str,
    /// The dimension of the series.
    args: &'static [&'static str],
    /// Smaller work, so the extra points cost about a second (not used with --quick).
    sizes: &'static [&'static str],
    keep: fn(&Measurement) -> bool,
}

/// A [`Sweep`], as one line of the table.
const fn sweep(
    topic: &'static str,
    label: &'static str,
    args: &'static [&'static str],
    sizes: &'static [&'static str],
    keep: fn(&Measurement) -> bool,
) -> Sweep {
    Sweep {
        topic,
        label,
        args,
        sizes,
        keep,
    }
}

fn round_trips(m: &Measurement) -> bool {
    m.name == "round_trip"
}

/// The spinning run's own figures and its two-CPU baselines (its single-core memcpy is the
/// main run's already).
fn spinning(m: &Measurement) -> bool {
    // The ring and its baselines alike carry the run's wait mode.
    m.config.get("wait").and_then(|x| x.as_str()) == Some("spin")
}

const SMALL_STREAM: &[&str] = &["--messages", "2000", "--total", "4MiB"];
const SMALL_SERVER: &[&str] = &["--messages", "2000", "--total", "4MiB", "--requests", "20"];
// sockets' extra points need no connections step beyond its smallest count, --quick or not.
const SOCKETS_4K: &[&str] = &["--bytes", "4096", "--connections-up-to", "10"];
const SOCKETS_64K: &[&str] = &["--bytes", "65536", "--connections-up-to", "10"];

#[rustfmt::skip]
const SWEEPS: &[Sweep] = &[
    sweep("pipes", "bytes=4096", &["--bytes", "4096"], SMALL_STREAM, round_trips),
    sweep("pipes", "bytes=65536", &["--bytes", "65536"], SMALL_STREAM, round_trips),
    sweep("sockets", "bytes=4096", SOCKETS_4K, SMALL_SERVER, round_trips),
    sweep("sockets", "bytes=65536", SOCKETS_64K, SMALL_SERVER, round_trips),
    sweep("mqueue", "bytes=1024", &["--bytes", "1024"], &["--messages", "2000"], round_trips),
    sweep("mqueue", "bytes=8192", &["--bytes", "8192"], &["--messages", "2000"], round_trips),
    sweep("shm", "wait=spin", &["--wait", "spin", "--pin", "split"], &[], spinning),
];

/// One planned invocation.
struct Plan<'a> {
    topic: &'a Topic,
    label: String,
    run: usize,
    args: Vec<String>,
    keep: Option<fn(&Measurement) -> bool>,
}

/// Runs the bench of `topics` and writes its folder; returns the folder and the summary.
pub fn bench(o: &Options, topics: &[Topic]) -> Result<(PathBuf, Summary)> {
    workspace::build_release(topics)?;
    workspace::become_subreaper()?;
    let lab = workspace::root().join("target").join("lab");
    std::fs::create_dir_all(&lab).with_context(|| format!("mkdir {}", lab.display()))?;
    // A folder of our own, even for two benches started in the same second.
    let stamp = utc_stamp(SystemTime::now());
    let mut created = stamp.clone();
    let mut k = 1;
    let dir = loop {
        let dir = lab.join(&created);
        match std::fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 100 => {
                k += 1;
                created = format!("{stamp}-{k}");
            }
            Err(e) => return Err(e).with_context(|| format!("mkdir {}", dir.display())),
        }
    };
    let reports_dir = dir.join("reports");
    std::fs::create_dir(&reports_dir)
        .with_context(|| format!("mkdir {}", reports_dir.display()))?;

    let (plans, mut notes) = plan(topics, o);
    let mut problems = Vec::new();
    // perf's figures go beside switch's and pipes': run it when one of them is benched.
    let mut perf = topics
        .iter()
        .any(|t| t.name == "switch" || t.name == "pipes")
        && crate::perf::available();
    let bar = ProgressBar::new((plans.len() + if perf { 4 * o.runs } else { 0 }) as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let plain = !std::io::stderr().is_terminal();
    let started = Instant::now();

    let mut jobs = Vec::new();
    let mut reports: Vec<(bool, Report)> = Vec::new();
    let mut perf_figures: Vec<(String, String, f64)> = Vec::new();
    for run in 1..=o.runs {
        for p in plans.iter().filter(|p| p.run == run) {
            let msg = format!("{}, run {run}/{}", p.label, o.runs);
            if plain {
                eprintln!(
                    "xtask bench: [{:>4.0} s] {msg}",
                    started.elapsed().as_secs_f64()
                );
            }
            bar.set_message(msg);
            let (job, report, trouble) = run_one(p, &dir)?;
            problems.extend(trouble);
            if let Some(mut r) = report {
                if let Some(keep) = p.keep {
                    r.measurements.retain(keep);
                }
                reports.push((p.keep.is_none(), r));
            }
            jobs.push(job);
            bar.inc(1);
        }
        if perf {
            for (variant, pin) in [
                ("process", "same"),
                ("thread", "same"),
                ("process", "none"),
                ("thread", "none"),
            ] {
                bar.set_message(format!(
                    "perf bench sched pipe ({variant}, pin {pin}), run {run}/{}",
                    o.runs
                ));
                match crate::perf::bench(variant == "thread", pin == "same") {
                    Ok(ns) => perf_figures.push((variant.to_owned(), pin.to_owned(), ns)),
                    Err(e) => {
                        // Not the lab's failure: perf or a PID namespace is not available.
                        notes.push(format!(
                            "perf bench sched pipe could not run ({e:#}); no reference figures"
                        ));
                        perf = false;
                        break;
                    }
                }
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();

    let (figures, findings) = crate::gather::gather(&reports);
    notes.extend(crate::held::skipped(&reports));
    // A verdict its own figures contradict would be a bug in the rule or in a topic: say so.
    for f in &findings {
        problems.extend(f.contradictions());
    }
    let mut reference = Vec::new();
    for (variant, pin) in [
        ("process", "same"),
        ("thread", "same"),
        ("process", "none"),
        ("thread", "none"),
    ] {
        let values: Vec<f64> = perf_figures
            .iter()
            .filter(|(v, p, _)| v == variant && p == pin)
            .map(|f| f.2)
            .collect();
        if let Some(figure) = Spread::of(&values) {
            reference.push(Reference {
                tool: "perf bench sched pipe".to_owned(),
                variant: variant.to_owned(),
                pin: pin.to_owned(),
                unit: "ns".to_owned(),
                figure,
            });
        }
    }
    let summary = Summary {
        schema: summary::SCHEMA,
        created: created.clone(),
        runs: o.runs,
        quick: o.quick,
        host: bench_host(),
        jobs,
        figures,
        findings,
        reference,
        problems,
        notes,
        topics: topics.iter().map(|t| t.declared.clone()).collect(),
    };
    let path = dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("write {}", path.display()))?;
    // `target/lab/latest` names the newest bench, for `report --from target/lab/latest`.
    let latest = dir.with_file_name("latest");
    let _ = std::fs::remove_file(&latest);
    std::os::unix::fs::symlink(&created, &latest)
        .with_context(|| format!("symlink {}", latest.display()))?;
    eprintln!(
        "xtask bench: {} runs of {} topics in {:.0} s",
        o.runs,
        topics.len(),
        started.elapsed().as_secs_f64()
    );
    Ok((dir, summary))
}

/// Every run of every topic, and the extra series points of the topics selected, run-major.
fn plan<'a>(topics: &'a [Topic], o: &Options) -> (Vec<Plan<'a>>, Vec<String>) {
    let mut notes = Vec::new();
    let msgsize_max = std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(8192);
    let cpus = labkit::pin::allowed_cpus().map_or(1, |c| c.len());
    let quick: Vec<String> = if o.quick {
        vec!["--quick".to_owned()]
    } else {
        Vec::new()
    };
    let mut plans = Vec::new();
    for run in 1..=o.runs {
        for topic in topics {
            let mut args = quick.clone();
            if let Some(n) = o.connections_up_to.filter(|_| topic.name == "sockets") {
                args.extend(["--connections-up-to".to_owned(), n.to_string()]);
            }
            args.push("--json".to_owned());
            plans.push(Plan {
                topic,
                label: topic.name.clone(),
                run,
                args,
                keep: None,
            });
            for s in SWEEPS.iter().filter(|s| s.topic == topic.name) {
                if s.topic == "mqueue" && s.args[1].parse::<u64>().is_ok_and(|b| b > msgsize_max) {
                    if run == 1 {
                        notes.push(format!(
                            "mqueue {}: skipped, above this machine's msgsize_max {msgsize_max}",
                            s.label
                        ));
                    }
                    continue;
                }
                if s.label == "wait=spin" && cpus < 2 {
                    if run == 1 {
                        notes.push(
                            "shm wait=spin: skipped, spinning needs two allowed CPUs".to_owned(),
                        );
                    }
                    continue;
                }
                let mut args = quick.clone();
                args.extend(s.args.iter().map(|a| (*a).to_owned()));
                if !o.quick {
                    args.extend(s.sizes.iter().map(|a| (*a).to_owned()));
                }
                args.push("--json".to_owned());
                plans.push(Plan {
                    topic,
                    label: format!("{} {}", topic.name, s.label),
                    run,
                    args,
                    keep: Some(s.keep),
                });
            }
        }
    }
    (plans, notes)
}

/// Runs one plan; its Report is saved as it came. Returns the job, the parsed Report and
/// any problems (no Report, failed checks, leftovers).
fn run_one(p: &Plan, dir: &Path) -> Result<(Job, Option<Report>, Vec<String>)> {
    let args: Vec<&str> = p.args.iter().map(String::as_str).collect();
    let r = workspace::run_topic(p.topic, &args, HANG_GUARD)?;
    let mut problems = Vec::new();
    let what = format!("{} run {}", p.label, p.run);
    if r.timed_out {
        problems.push(format!(
            "{what}: hung, killed after {} s",
            HANG_GUARD.as_secs()
        ));
    }
    if !r.leftovers.is_empty() {
        problems.push(format!("{what}: left behind {}", r.leftovers.join(", ")));
    }
    let report = match serde_json::from_str::<Report>(&r.stdout) {
        Ok(report) => Some(report),
        Err(e) => {
            problems.push(format!(
                "{what}: exit {:?}, no Report ({e}): {}",
                r.code,
                r.last_error_line()
            ));
            None
        }
    };
    let mut saved = None;
    if let Some(report) = &report {
        problems.extend(crate::gather::failed_checks(&p.label, p.run, report));
        let name = format!(
            "reports/{}-r{}.json",
            p.label.replace([' ', '='], "-"),
            p.run
        );
        let path = dir.join(&name);
        std::fs::write(&path, &r.stdout).with_context(|| format!("write {}", path.display()))?;
        saved = Some(name);
    }
    let job = Job {
        topic: p.topic.name.clone(),
        label: p.label.clone(),
        run: p.run,
        args: p.args.clone(),
        seconds: r.elapsed.as_secs_f64(),
        exit_code: r.code,
        report: saved,
    };
    Ok((job, report, problems))
}

/// The host of the Report (docs/ARCHITECTURE.md), with the compiler and the CPU frequency governor.
fn bench_host() -> BenchHost {
    let h = labkit::host::Host::collect();
    let rustc = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rustc (unknown)".to_owned());
    let governor = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "not readable (no cpufreq)".to_owned());
    BenchHost {
        cpu_model: h.cpu_model,
        cpus: h.cpus,
        cpus_allowed: h.cpus_allowed,
        kernel: h.kernel,
        rustc,
        thp: h.thp,
        governor,
    }
}

/// `2026-11-28T11-07-51Z`: sortable, and a valid file name.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_calendar_dates() {
        let at = |s: u64| utc_stamp(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00-00-00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00-00-00Z");
        assert_eq!(at(1_795_865_271), "2026-11-28T11-27-51Z");
    }

    #[test]
    fn bad_flags_are_refused_with_the_limit() {
        let mut o = Options::default();
        let args = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse(&args(&["--runs", "0"]), &mut o).unwrap_err(),
            "--runs 0: from 1 to 100"
        );
        assert!(parse(&args(&["--runs"]), &mut o).is_err());
        assert!(parse(&args(&["--bogus"]), &mut o).is_err());
        parse(
            &args(&["--runs", "3", "--quick", "--topics", "pipes,shm"]),
            &mut o,
        )
        .unwrap();
        assert_eq!((o.runs, o.quick, o.topics.len()), (3, true, 2));
    }
}
