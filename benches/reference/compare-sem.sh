#!/usr/bin/env bash
# Measures `semaphore`'s post-to-wake round trip beside lmbench's `lat_sem` method on this
# machine, both sides on one CPU, alternating, and prints ratios (ours / C: below 1.0 means
# ours is faster).
#
#   benches/reference/compare-sem.sh [PAIRS]     (needs cc, python3, taskset)
#
# Ours: round_trip/process/sem-pshared with `--pin same` (two processes, unnamed pshared
# semaphores in a shared page, both pinned to one CPU). C: lat_sem.c here, under `taskset -c`
# the same CPU. The same statistic on both sides: each round trip timed on its own, the
# median (and the mean beside it).
. "$(dirname "$0")/common.sh"  # strict mode, cd to the root, $pairs, $out
pairs=${1:-10}
cargo build --release --quiet -p semaphore
cc -O2 -pthread -o "$out/lat_sem" benches/reference/lat_sem.c
cpu=$(taskset -pc $$ | sed 's/.*: //; s/[,-].*//')
for i in $(seq "$pairs"); do
    ./target/release/semaphore --json --pin same > "$out/ours-$i.json"
    taskset -c "$cpu" "$out/lat_sem" 10000 > "$out/c-$i"
done
python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
p50s, means = [], []
for i in range(1, pairs + 1):
    r = json.load(open(f"{out}/ours-{i}.json"))
    m = next(x for x in r["measurements"] if x["name"] == "round_trip"
             and x["variant"] == "process" and x["mechanism"] == "sem-pshared")
    _, c_p50, c_mean = open(f"{out}/c-{i}").read().split()
    o_p50, o_mean = m["p50"] / 1000, m["mean"] / 1000
    p50s.append(o_p50 / float(c_p50))
    means.append(o_mean / float(c_mean))
    print(f"pair {i:2}: ours p50 {o_p50:5.2f} us, mean {o_mean:5.2f} | C p50 {float(c_p50):5.2f} us, "
          f"mean {float(c_mean):5.2f} | x{p50s[-1]:.2f} (mean x{means[-1]:.2f})")
print(f"ours / C on one CPU: p50 x{statistics.median(p50s):.2f} (x{min(p50s):.2f}-x{max(p50s):.2f}), "
      f"mean x{statistics.median(means):.2f} (x{min(means):.2f}-x{max(means):.2f})")
PY
