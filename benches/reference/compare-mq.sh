#!/usr/bin/env bash
# Measures `mqueue` round trips beside a C ping-pong doing the same (lat_mq.c here: mq_send then
# mq_receive, 100-byte messages, two queues, two processes), alternating, and prints ratios (ours
# / C: below 1.0 means ours is faster), of the medians and of the means.
#
#   benches/reference/compare-mq.sh [PAIRS]     (needs cc, python3, taskset)
#
# Ours: round_trip/process/mq, each message filled with its sequence number and pattern and
# compared byte for byte when it comes back; each round trip timed on its own, as lat_mq.c times
# its own. Both once placed by the scheduler and once with everything on CPU 0 (`taskset -c 0`:
# mqueue has no --pin), since placement dominates here: on two CPUs each hand-off may wake an
# idle CPU.
. "$(dirname "$0")/common.sh"  # strict mode, cd to the root, $pairs, $out
cargo build --release --quiet -p mqueue
cc -O2 -o "$out/lat_mq" benches/reference/lat_mq.c -lrt
for i in $(seq "$pairs"); do
    ./target/release/mqueue --json --messages 1000 > "$out/placed-$i.json"
    "$out/lat_mq" 20000 > "$out/c-$i"
    taskset -c 0 "$out/lat_mq" 20000 > "$out/sc-$i"
    taskset -c 0 ./target/release/mqueue --json --messages 1000 > "$out/same-$i.json"
done
python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def ours(path):
    r = json.load(open(path))
    m = next(x for x in r["measurements"]
             if x["name"] == "round_trip" and x["variant"] == "process" and x["mechanism"] == "mq")
    return m["p50"] / 1000, m["mean"] / 1000
def c(path):
    _, mean, p50 = open(path).read().split()
    return float(p50), float(mean)
ratios = {k: [] for k in ("placed p50", "placed mean", "cpu0 p50", "cpu0 mean")}
for i in range(1, pairs + 1):
    (op, om), (cp, cm) = ours(f"{out}/placed-{i}.json"), c(f"{out}/c-{i}")
    (sop, som), (scp, scm) = ours(f"{out}/same-{i}.json"), c(f"{out}/sc-{i}")
    print(f"pair {i}: placed p50 {op:6.2f} us vs C {cp:6.2f} us, mean {om:6.2f} vs {cm:6.2f} | "
          f"cpu0 p50 {sop:5.2f} vs C {scp:5.2f}, mean {som:5.2f} vs {scm:5.2f}")
    for k, o, cc in (("placed p50", op, cp), ("placed mean", om, cm),
                     ("cpu0 p50", sop, scp), ("cpu0 mean", som, scm)):
        ratios[k].append(o / cc)
print("median ratios (ours/C, < 1.0 = ours faster): " +
      ", ".join(f"{k} x{statistics.median(v):.2f} (x{min(v):.2f}-x{max(v):.2f})" for k, v in ratios.items()))
PY
