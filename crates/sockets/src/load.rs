//! Step 4: the echo server under load, its four models alternating block by block (each block
//! is a fresh server process: see [`crate::block`]); the measurements and the checks.

use std::time::Duration;

use anyhow::Result;
use clap::ValueEnum;
use labkit::measure::cpu_ns_per_op;
use labkit::signals::Shutdown;
use labkit::{Better, CommonArgs, LatencyRecorder, Measurement, Report, Test, Variant};
use serde_json::json;

use crate::Plan;
use crate::block::{self, Sample};
use crate::server::{ConnStats, Model};

/// Untimed requests on one connection before each block's timing starts.
pub const WARMUP_REQUESTS: u64 = 5;

/// The seed's side a server model stands for.
pub fn variant(model: Model) -> Variant {
    match model {
        Model::ForkPerConnection | Model::Prefork { .. } => Variant::Process,
        Model::ThreadPerConnection | Model::ThreadPool { .. } => Variant::Thread,
        Model::Async => Variant::Task,
    }
}

/// The server models the flags ask for, pools of `workers`, in the order they run.
pub fn chosen(common: &CommonArgs, workers: u64) -> Vec<Model> {
    Model::all(workers as usize)
        .into_iter()
        .filter(|m| common.wants(variant(*m)))
        .collect()
}

/// The `--model` flag of a server child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    Fork,
    Thread,
    Prefork,
    Pool,
    Async,
}

impl ModelArg {
    /// The flag's value that asks a server child for `model`.
    pub fn of(model: Model) -> &'static str {
        match model {
            Model::ForkPerConnection => "fork",
            Model::ThreadPerConnection => "thread",
            Model::Prefork { .. } => "prefork",
            Model::ThreadPool { .. } => "pool",
            Model::Async => "async",
        }
    }

    /// The model a server child runs, with `workers` for a pool.
    pub fn model(self, workers: usize) -> Model {
        match self {
            ModelArg::Fork => Model::ForkPerConnection,
            ModelArg::Prefork => Model::Prefork { workers },
            ModelArg::Thread => Model::ThreadPerConnection,
            ModelArg::Pool => Model::ThreadPool { workers },
            ModelArg::Async => Model::Async,
        }
    }
}

/// One server model's figures over all blocks, as they add up.
pub struct Load {
    pub model: Model,
    pub latency: LatencyRecorder,
    pub rates: Vec<f64>,
    pub pss_peaks: Vec<f64>,
    pub requests: u64,
    pub elapsed: Duration,
    pub cpu: Duration,
    pub peak: Sample,
    pub served: ConnStats,
    pub connections: u64,
    pub after_rude: u64,
}

impl Load {
    fn new(model: Model) -> Load {
        Load {
            model,
            latency: LatencyRecorder::new(),
            rates: Vec::new(),
            pss_peaks: Vec::new(),
            requests: 0,
            elapsed: Duration::ZERO,
            cpu: Duration::ZERO,
            peak: Sample::default(),
            served: ConnStats::default(),
            connections: 0,
            after_rude: 0,
        }
    }
}

/// What the claims need of one model: its figure per block and the measurement of them all,
/// for requests per second and for the peak memory (PSS, KiB) of the server with its children.
pub struct Figures {
    pub model: Model,
    pub rates: Vec<f64>,
    pub rate: Measurement,
    pub pss_peaks: Vec<f64>,
    pub pss: Measurement,
}

/// Step 4: the server under load, models alternating block by block; each model's figures,
/// with every request checked.
pub fn run(
    report: &mut Report,
    models: &[Model],
    plan: &Plan,
    shutdown: &Shutdown,
) -> Result<Vec<Figures>> {
    let mut loads: Vec<Load> = models.iter().map(|&model| Load::new(model)).collect();
    // What a block costs in CPU with no timed request (start the server, the warm-up, stop,
    // reap): taken off each block, so CPU per request is the requests' own.
    let mut idle = Vec::new();
    for load in &loads {
        let mut probe = Load::new(load.model);
        block::run(&mut probe, plan, 0, shutdown, false)?;
        idle.push(probe.cpu);
    }
    for block in 0..plan.blocks {
        for (load, idle) in loads.iter_mut().zip(&idle) {
            let before = load.cpu;
            block::run(load, plan, plan.requests, shutdown, block == 0)?;
            load.cpu = before + (load.cpu - before).saturating_sub(*idle);
        }
    }
    let figures = loads.iter().map(|l| record(report, l, plan)).collect();
    check_served(report, &loads, plan);
    check_fork_threads(report, &loads);
    Ok(figures)
}

/// Writes one model's measurements into the Report; returns the figures the claims need.
fn record(report: &mut Report, load: &Load, plan: &Plan) -> Figures {
    let (variant, name) = (variant(load.model), load.model.name());
    let mut config = json!({
        "bytes": plan.bytes, "clients": plan.clients, "per_connection": plan.per_connection,
        "workers": if load.model.workers().is_some() { plan.workers } else { 0 },
    });
    if load.model == Model::Async {
        let threads = crate::tasks::runtime_threads();
        config["runtime"] = json!(format!("tokio multi-thread, {threads} threads"));
    }
    let per_request = cpu_ns_per_op(load.cpu, load.requests);
    report.measure(Measurement::histogram(
        "request",
        variant,
        name,
        config.clone(),
        &load.latency,
        per_request,
    ));
    let rate = Measurement::value(
        "requests_per_s",
        variant,
        name,
        config.clone(),
        "req/s",
        load.requests as f64 / load.elapsed.as_secs_f64(),
        per_request,
    );
    report.measure(rate.clone());
    let kib = |what, kib: u64| {
        Measurement::value(what, variant, name, config.clone(), "KiB", kib as f64, None)
    };
    let pss = kib("peak_pss", load.peak.pss_kib);
    report.measure(pss.clone());
    report.measure(kib("peak_rss", load.peak.rss_kib));
    Figures {
        model: load.model,
        rates: load.rates.clone(),
        rate,
        pss_peaks: load.pss_peaks.clone(),
        pss,
    }
}

/// The checks of every request: each served once and intact, by the clients' count and the
/// server's; and the rude client logged, with the server serving the next.
fn check_served(report: &mut Report, loads: &[Load], plan: &Plan) {
    let per_client = plan.requests * plan.blocks;
    let mut problems = Vec::new();
    let mut rude = Vec::new();
    for load in loads {
        let name = load.model.name();
        // The clients' requests, each block's warm-up, and the one after the rude client.
        let expected = plan.clients * per_client + plan.blocks * WARMUP_REQUESTS + 1;
        if load.requests != plan.clients * per_client
            || load.served.requests != expected
            || load.served.failed != 0
        {
            problems.push(format!(
                "{name}: clients confirmed {} requests, the server served {} of {expected}, {} connections failed",
                load.requests, load.served.requests, load.served.failed
            ));
        }
        let carried_on = format!(
            "{name}: {} left mid-request, then {} request served",
            load.served.left_mid_request, load.after_rude
        );
        if load.served.left_mid_request != 1 || load.after_rude != 1 {
            problems.push(carried_on.clone());
        }
        rude.push(carried_on);
    }
    report.check(
        "every request was served once and echoed intact",
        problems.is_empty(),
        if problems.is_empty() {
            format!(
                "{} clients x {per_client} requests per model, each checked at both ends and \
                 confirmed by the server's per-connection count; TCP on 127.0.0.1 only",
                plan.clients
            )
        } else {
            problems.join("; ")
        },
    );
    if !loads.is_empty() {
        let all_rude = loads
            .iter()
            .all(|l| l.served.left_mid_request == 1 && l.after_rude == 1);
        report.check(
            "a client leaving mid-request is logged and the server carries on",
            all_rude,
            format!(
                "a client sent half a request and closed (the server logged it on stderr); {}",
                rude.join("; ")
            ),
        );
    }
}

/// The fork rule, observed: the fork-per-connection server had one thread while it had
/// children; skipped if the sampler never saw a child.
fn check_fork_threads(report: &mut Report, loads: &[Load]) {
    let Some(fork) = loads.iter().find(|l| l.model == Model::ForkPerConnection) else {
        return;
    };
    let threads = loads
        .iter()
        .filter(|l| l.model != Model::ForkPerConnection)
        .map(|l| format!("{} peaked at {} threads", l.model.name(), l.peak.threads))
        .collect::<Vec<_>>();
    let name = "the forking server had no other thread when it forked";
    if fork.peak.processes > 1 {
        report.check(
            name,
            fork.peak.threads == 1,
            format!(
                "fork-per-connection: {} thread(s) at most, up to {} processes (the server \
                 and its children){}{}",
                fork.peak.threads,
                fork.peak.processes,
                if threads.is_empty() { "" } else { "; " },
                threads.join(", ")
            ),
        );
    } else {
        // The sampler looks every few ms: a short run can end before it sees a child.
        report.skip(
            name,
            format!(
                "not observed: the blocks ended before the sampler saw a forked child \
                 (server threads seen: {}); more --requests make the blocks longer",
                fork.peak.threads
            ),
        );
    }
}

/// `usecase.shared-data`, like with like: a pool of threads against a pool of processes, both
/// created before the load; a thread per connection against a process per connection. Each
/// for requests per second and for peak memory.
pub fn judge(report: &mut Report, plan: &Plan, servers: &[Figures], summary: &mut String) {
    for pooled in [true, false] {
        let side = |side: Variant| {
            servers
                .iter()
                .find(|s| variant(s.model) == side && s.model.workers().is_some() == pooled)
        };
        let (Some(t), Some(p)) = (side(Variant::Thread), side(Variant::Process)) else {
            continue;
        };
        let (threads, processes) = (t.model.name(), p.model.name());
        summary.push_str(&format!(
            "; echo server, {threads} {:.0} req/s vs {processes} {:.0}",
            t.rate.value.unwrap_or(0.0),
            p.rate.value.unwrap_or(0.0)
        ));
        let what = format!(
            "echo server, {} clients, {} requests per connection",
            plan.clients, plan.per_connection
        );
        let test = Test::new(what, "req/s", Better::Higher, "faster")
            .favoured(threads, &t.rates)
            .other(processes, &p.rates);
        report.claim_measured("usecase.shared-data", test, [&p.rate, &t.rate]);
        let test = Test::new(
            "peak memory of the server with its children, PSS (each shared page counted once)",
            "KiB",
            Better::Lower,
            "smaller",
        )
        .favoured(threads, &t.pss_peaks)
        .other(processes, &p.pss_peaks);
        report.claim_measured("usecase.shared-data", test, [&p.pss, &t.pss]);
    }
}
