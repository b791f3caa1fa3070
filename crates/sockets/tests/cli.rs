//! End-to-end tests of the `sockets` binary: the quick run, bad flags, a peer killed mid-run
//! (a stream child, a datagram child with no EOF to report its death, the server), SIGINT
//! mid-run, eight copies at once. After each: no process, no socket file or directory, no
//! ledger entry left.

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
    for mech in ["socketpair", "unix-stream", "unix-dgram", "tcp"] {
        for variant in ["process", "thread"] {
            for name in ["round_trip", "throughput"] {
                let key = format!("{name}/{variant}/{mech}");
                let m = report.find(&key).unwrap_or_else(|| panic!("no {key}"));
                assert!(m.cpu_ns_per_op.is_some_and(|c| c > 0.0), "{key}");
            }
        }
    }
    testkit::assert_measured(
        &report,
        &[
            "round_trip/thread/channel",
            "throughput/thread/channel",
            "request/process/fork-per-connection",
            "request/thread/thread-per-connection",
            "request/thread/thread-pool",
            "requests_per_s/thread/thread-pool",
            "peak_pss/process/fork-per-connection",
            "held_request/task/async",
            "held_pss_per_connection/process/prefork",
            "connect_all/thread/thread-per-connection",
        ],
    );
    // Step 5: every model held 10, 100 and 1,000 connections, each served.
    for model in [
        "fork-per-connection",
        "thread-per-connection",
        "prefork",
        "thread-pool",
        "async",
    ] {
        let counts: Vec<u64> = report
            .measurements
            .iter()
            .filter(|m| m.name == "held_requests_per_s" && m.mechanism == model)
            .filter_map(|m| m.config.get("connections").and_then(|c| c.as_u64()))
            .collect();
        assert_eq!(counts, [10, 100, 1000], "{model}");
    }
    for id in [
        "comm.threads-faster",
        "comm.process-needs-ipc",
        "usecase.shared-data",
        "task.memory-per-connection",
    ] {
        assert!(report.claims.iter().any(|c| c.id == id), "no claim {id}");
    }
    // The fork server's memory was sampled with its children: more than one process's worth.
    let rss = |m: &str| {
        report
            .measurements
            .iter()
            .find(|x| x.name == "peak_rss" && x.mechanism == m)
            .and_then(|x| x.value)
            .unwrap()
    };
    assert!(rss("fork-per-connection") > 0.0 && rss("thread-pool") > 0.0);
}

/// A size written with a suffix. (What `--help` promises is checked by `standard_tests!`.)
#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(BIN, &[(&["--total", "17GiB"], "at most")]);
}

/// A long stream: the tests act once the child they want exists.
const LONG_STREAM: &[&str] = &["--json", "--quick", "--total", "16GiB"];

#[test]
fn a_stream_peer_killed_mid_run_is_reported_with_exit_1() {
    testkit::assert_peer_kill_reported(
        BIN,
        LONG_STREAM,
        |_, cmd| cmd.contains("--role sink") && cmd.contains("socketpair"),
        "sink peer",
    );
}

#[test]
fn a_datagram_peer_killed_mid_run_is_noticed_without_eof() {
    testkit::assert_peer_kill_reported(
        BIN,
        // Blocks of 40000 round trips per link: the run reaches the dead link within seconds.
        &["--json", "--messages", "200000"],
        |_, cmd| cmd.contains("--role echo") && cmd.contains("unix-dgram"),
        "echo peer",
    );
}

#[test]
fn the_server_killed_mid_load_is_reported_with_exit_1() {
    testkit::assert_peer_kill_reported(
        BIN,
        &["--json", "--quick", "--requests", "1000000"],
        |_, cmd| cmd.contains("--role server") && cmd.contains("--requests"),
        "server peer",
    );
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    testkit::assert_sigint_stops(BIN, LONG_STREAM, |_, cmd| cmd.contains("--role sink"));
}

/// Runs `args`, waits for the fork-per-connection server whose command line has `mark`,
/// SIGKILLs the process serving its first connection: the run must end with exit 1, a message
/// holding every one of `expect`, and nothing left behind.
fn assert_connection_kill_reported(args: &[&str], mark: &str, expect: &[&str]) {
    let t = testkit::tag("kill-conn");
    let (run, server) = testkit::start_until_child(
        testkit::command(BIN, &t, args),
        |_, cmd| cmd.contains("--role server") && cmd.contains(mark),
        std::time::Duration::from_millis(300),
    );
    let limit = std::time::Duration::from_secs(30);
    let connection = testkit::first_child_of(server, limit, "the server's connection process");
    testkit::signal(connection, nix::sys::signal::Signal::SIGKILL);
    let done = testkit::finish(run, std::time::Duration::from_secs(60));
    let err = done.stderr();
    assert_eq!(done.code(), Some(1), "{err}");
    assert!(
        expect.iter().all(|e| err.contains(e)),
        "{expect:?} in: {err}"
    );
    testkit::assert_clean(&t, done.pid);
}

#[test]
fn a_connection_process_killed_mid_load_is_reported_with_exit_1() {
    // Long connections, so the forked process serving one is there to be killed.
    let args = ["--json", "--quick", "--requests", "1000000"];
    let args = [&args[..], &["--per-connection", "1000000"]].concat();
    let expect = "of the fork-per-connection server lost its connection";
    assert_connection_kill_reported(&args, "--requests", &[expect]);
}

testkit::standard_tests!(BIN);

#[test]
fn clients_beyond_the_descriptor_limit_are_refused_before_starting() {
    let limit = testkit::Resource::RLIMIT_NOFILE;
    let args = ["--quick", "--clients", "16"];
    testkit::assert_refused_under(BIN, limit, 30, &args, "RLIMIT_NOFILE=30");
}

/// Step 5 with the same server models, driven by the crowd: a server killed while it holds
/// connections, and the crowd killed, each end the run with exit 1 naming the peer.
const HELD_LONG: &[&str] = &[
    "--json",
    "--quick",
    "--connections",
    "100",
    "--per-connection",
    "1000000",
];

#[test]
fn the_server_killed_while_holding_connections_is_reported_with_exit_1() {
    testkit::assert_peer_kill_reported(
        BIN,
        HELD_LONG,
        |_, cmd| cmd.contains("--role server") && cmd.contains("--connections"),
        "server peer",
    );
}

#[test]
fn the_crowd_killed_mid_run_is_reported_with_exit_1() {
    testkit::assert_peer_kill_reported(
        BIN,
        HELD_LONG,
        |_, cmd| cmd.contains("--role crowd"),
        "crowd peer",
    );
}

#[test]
fn connections_beyond_the_descriptor_limit_are_refused_before_starting() {
    let limit = testkit::Resource::RLIMIT_NOFILE;
    let args = ["--quick", "--connections", "1000"];
    testkit::assert_refused_under(BIN, limit, 300, &args, "RLIMIT_NOFILE=300");
}

/// In the sweep, a count beyond a limit is skipped for each model, naming the limit; the run
/// passes, and the claim judged at that count says it was not judged, and why.
#[test]
fn the_sweep_skips_a_count_beyond_a_limit_naming_it() {
    let t = testkit::tag("sweep-limit");
    let limit = testkit::Resource::RLIMIT_NOFILE;
    let args = ["--quick", "--json", "--variant", "thread"];
    let done = testkit::run_under(BIN, &t, limit, 600, &args);
    let report = done.report_of_success();
    assert!(
        testkit::problems(&report).is_empty(),
        "{:?}",
        testkit::problems(&report)
    );
    let skipped: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.name.ends_with("holds 1000 connections"))
        .collect();
    assert_eq!(skipped.len(), 3, "{:?}", report.checks);
    for c in skipped {
        assert!(c.detail.contains("RLIMIT_NOFILE=600"), "{}", c.detail);
    }
    let claim = report
        .claims
        .iter()
        .find(|c| c.id == "task.memory-per-connection");
    let claim = claim.expect("a finding for the claim");
    assert_eq!(claim.verdict, labkit::Verdict::Inconclusive);
    assert!(claim.evidence.contains("skipped"), "{}", claim.evidence);
    testkit::assert_clean(&t, done.pid);
}

/// The process serving one held connection (fork-per-connection, the first model of step 5)
/// SIGKILLed: the crowd notices its connection closed mid-run, and the run ends with exit 1.
#[test]
fn a_held_connections_process_killed_is_reported_with_exit_1() {
    let expect = [
        "fork-per-connection server holding 100 connections",
        "closed connection",
    ];
    assert_connection_kill_reported(HELD_LONG, "--connections", &expect);
}
