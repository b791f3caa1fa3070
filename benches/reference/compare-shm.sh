#!/usr/bin/env bash
# Measures `shm`'s spinning ring beside the hardware's floor on this machine, alternating, and
# prints ratios (ours / C: 1.0 would be the floor itself).
#
#   benches/reference/compare-shm.sh [PAIRS] [OLD_SHM]     (needs cc, python3)
#
# The floor is cacheline.c here: two threads on CPUs 0 and 1 bouncing one cache line, each
# round trip timed on its own, the median taken; the same with two lines, one per direction
# (the floor of a pair of one-way rings, ours among them); then memcpy through memory (64 MiB
# buffers).
# Ours: `shm --wait spin --pin split` with 60 B messages (a message that shares its slot's
# first cache line with the stamp: one line per hand-off) and with 64 B (4 bytes spill into a
# second line), the ring's round trip p50 between processes and between threads; and, in the
# same runs, the topic's own one-line atomic ping-pong. The host may move the vCPUs between
# runs (the line's round trip then jumps, e.g. from 80 ns to 380 ns): every ratio is taken
# within one pair, and the pairs are listed so a regime change shows.
#
# With OLD_SHM (a release `shm` binary built from another commit), each pair also runs it at
# 64 B and 64 KiB with the default wait (and --wait spin), for throughput before and after.
. "$(dirname "$0")/common.sh"  # strict mode, cd to the root, $pairs, $out
pairs=${1:-10}
old=${2:-}
cargo build --release --quiet -p shm
cc -O2 -pthread -o "$out/cacheline" benches/reference/cacheline.c
for i in $(seq "$pairs"); do
    "$out/cacheline" 200000 > "$out/c-$i"
    ./target/release/shm --json --wait spin --pin split --bytes 60 > "$out/s60-$i.json"
    ./target/release/shm --json --wait spin --pin split --bytes 64 > "$out/s64-$i.json"
    if [ -n "$old" ]; then
        for b in 64 65536; do
            "$old" --json --pin split --bytes $b > "$out/old-$b-$i.json"
            ./target/release/shm --json --pin split --bytes $b > "$out/new-$b-$i.json"
        done
    fi
done
python3 - "$out" "$pairs" "${old:+yes}" <<'PY'
import json, statistics, sys
out, pairs, old = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "yes"
def ring(path, variant, mech, stat="p50"):
    r = json.load(open(path))
    return next(m[stat] for m in r["measurements"] if m["name"] == "round_trip"
                and m["variant"] == variant and m["mechanism"] == mech)
def stream(path, variant, mech):
    r = json.load(open(path))
    return next(m["value"] for m in r["measurements"] if m["name"] == "throughput"
                and m["variant"] == variant and m["mechanism"] == mech)
rows = {k: [] for k in ("process 60 B", "thread 60 B", "process 64 B", "thread 64 B", "atomic", "two lines")}
ring_two = {k: [] for k in ("process 60 B", "thread 60 B")}
means = {k: [] for k in ("process 60 B", "process 64 B")}
tp = {k: [] for k in ("64 B process", "64 B thread", "64 KiB process", "64 KiB thread")}
for i in range(1, pairs + 1):
    words = open(f"{out}/c-{i}").read().split()
    c = {words[k]: [float(x) for x in words[k + 1:k + 3] if x[0].isdigit()] for k in range(0, len(words)) if words[k] in ("line", "two", "memcpy")}
    (line, line_mean), two = c["line"], c["two"][0]
    rows["two lines"].append(two / line)
    ring_two["process 60 B"].append(ring(f"{out}/s60-{i}.json", "process", "shm-ring") / two)
    ring_two["thread 60 B"].append(ring(f"{out}/s60-{i}.json", "thread", "ring") / two)
    means["process 60 B"].append(ring(f"{out}/s60-{i}.json", "process", "shm-ring", "mean") / line_mean)
    means["process 64 B"].append(ring(f"{out}/s64-{i}.json", "process", "shm-ring", "mean") / line_mean)
    got = {
        "process 60 B": ring(f"{out}/s60-{i}.json", "process", "shm-ring"),
        "thread 60 B": ring(f"{out}/s60-{i}.json", "thread", "ring"),
        "process 64 B": ring(f"{out}/s64-{i}.json", "process", "shm-ring"),
        "thread 64 B": ring(f"{out}/s64-{i}.json", "thread", "ring"),
        "atomic": ring(f"{out}/s60-{i}.json", "thread", "atomic-spin"),
    }
    print(f"pair {i:2}: C line {line:4.0f} ns, two lines {two:4.0f} | " +
          " ".join(f"{k} {v:4.0f} (x{v / line:.2f})" for k, v in got.items()))
    for k, v in got.items():
        rows[k].append(v / line)
    if old:
        for b, name in ((64, "64 B"), (65536, "64 KiB")):
            for variant, mech in (("process", "shm-ring"), ("thread", "ring")):
                o = stream(f"{out}/old-{b}-{i}.json", variant, mech)
                n = stream(f"{out}/new-{b}-{i}.json", variant, mech)
                tp[f"{name} {variant}"].append(n / o)
print("ring p50 / C line, median (min-max) over pairs: " +
      ", ".join(f"{k} x{statistics.median(v):.2f} (x{min(v):.2f}-x{max(v):.2f})" for k, v in rows.items()))
print("ring p50 / C two lines, median (min-max) over pairs: " +
      ", ".join(f"{k} x{statistics.median(v):.2f} (x{min(v):.2f}-x{max(v):.2f})" for k, v in ring_two.items()))
print("ring mean / C line mean (the clock counts in steps of ~10 ns; means are finer): " +
      ", ".join(f"{k} x{statistics.median(v):.2f} (x{min(v):.2f}-x{max(v):.2f})" for k, v in means.items()))
if old:
    print("stream throughput new / old (default wait, two CPUs), median (min-max): " +
          ", ".join(f"{k} x{statistics.median(v):.2f} (x{min(v):.2f}-x{max(v):.2f})" for k, v in tp.items()))
PY
