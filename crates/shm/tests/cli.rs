//! End-to-end tests of the `shm` binary: the quick run, bad flags (spin only with --pin split),
//! the peer killed mid-run, SIGINT mid-run, eight copies at once. After each: nothing in
//! /dev/shm, no ledger entry, no process left.

const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

#[test]
fn the_quick_run_passes_every_check() {
    let report = testkit::assert_quick_run(BIN, &["--quick", "--json"]);
    // Every size at each placement, one CPU then two, each judged on its own.
    let sizes: Vec<(u64, &str)> = report
        .measurements
        .iter()
        .filter(|m| m.name == "round_trip" && m.mechanism == "shm-ring")
        .map(|m| {
            (
                m.config["bytes"].as_u64().unwrap(),
                m.config["pin"].as_str().unwrap(),
            )
        })
        .collect();
    let each = |pin| [64, 4096, 65536, 1 << 20].map(|b| (b, pin));
    assert_eq!(sizes, [each("same"), each("split")].concat());
    // Judged: the 64 B round trip and the 64 KiB stream, on one CPU and on two; the other
    // sizes are figures for the plots.
    let judged: Vec<(&str, &str)> = report
        .claims
        .iter()
        .filter_map(|c| Some((c.placement.as_deref()?, c.test.as_ref()?.what.as_str())))
        .collect();
    assert_eq!(judged.len(), 4, "{judged:?}");
    assert!(judged[0].1.starts_with("round trip of 64 B"), "{judged:?}");
    assert!(judged[1].1.starts_with("stream of 64 KiB"), "{judged:?}");
    assert_eq!([judged[0].0, judged[3].0], ["same", "split"]);
    for mechanism in ["shm-ring", "ring", "channel"] {
        assert!(
            report
                .measurements
                .iter()
                .any(|m| m.mechanism == mechanism && m.name == "throughput")
        );
    }
}

#[test]
fn spinning_on_two_cpus_measures_the_baselines_beside_the_ring() {
    if labkit::pin::allowed_cpus().map_or(0, |c| c.len()) < 2 {
        eprintln!("skipped: spinning needs two allowed CPUs");
        return;
    }
    let report = testkit::assert_quick_run(
        BIN,
        &[
            "--quick", "--pin", "split", "--wait", "spin", "--bytes", "64", "--json",
        ],
    );
    let figure = |name: &str, mechanism: &str| {
        report
            .measurements
            .iter()
            .find(|m| m.name == name && m.mechanism == mechanism)
            .unwrap_or_else(|| panic!("no {name}/{mechanism}"))
            .clone()
    };
    assert!(figure("round_trip", "atomic-spin").p50.unwrap() > 0);
    let cross = figure("throughput", "cross-core-copy");
    assert_eq!(cross.config["pin"], "split");
    assert!(cross.value.unwrap() > 0.0);
    // One core's memcpy twice: 64 KiB blocks that stay in the cache, and larger buffers.
    let memcpy: Vec<u64> = report
        .measurements
        .iter()
        .filter(|m| m.mechanism == "memcpy" && m.value.unwrap() > 0.0)
        .map(|m| m.config["bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(memcpy.len(), 2, "{memcpy:?}");
    assert_eq!(memcpy[0], 64 << 10);
    assert!(memcpy[1] > 1 << 20, "{memcpy:?}");
}

/// A size with a suffix, and a combination refused before anything starts: spinning needs
/// the two sides on two CPUs. (What `--help` promises is checked by `standard_tests!`.)
#[test]
fn bad_flags_exit_2_naming_the_limit() {
    testkit::assert_usage_errors(
        BIN,
        &[
            (&["--bytes", "2MiB"], "at most 1048576"),
            (
                &["--wait", "spin", "--pin", "none"],
                "--wait spin needs --pin split",
            ),
            (
                &["--wait", "spin", "--pin", "same"],
                "--wait spin needs --pin split",
            ),
        ],
    );
}

/// The echo child (not the short-lived child forked by the first step).
fn echo(_: u32, cmdline: &str) -> bool {
    cmdline.contains("--role echo")
}

#[test]
fn the_peer_killed_mid_run_is_reported_with_exit_1() {
    testkit::assert_peer_kill_reported(BIN, &["--json"], echo, "echo peer");
}

#[test]
fn sigint_mid_run_stops_cleanly_with_130() {
    testkit::assert_sigint_stops(BIN, &["--json"], echo);
}

testkit::standard_tests!(BIN);
