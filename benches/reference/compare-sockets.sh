#!/usr/bin/env bash
# Measures `sockets` round trips beside a C ping-pong doing the same (lat_sock.c here: lmbench's
# lat_unix / lat_tcp method, 100-byte messages, TCP_NODELAY), alternating, and prints ratios
# (ours / C, mean round trip: below 1.0 means ours is faster).
#
#   benches/reference/compare-sockets.sh [PAIRS]     (needs cc, python3)
#
# Ours: the mean of round_trip/process/socketpair and round_trip/process/tcp, two processes
# (this binary re-executed), every frame framed and checked (length, CRC-32, sequence number) at
# the far end and compared byte for byte at ours. Both once placed by the scheduler and once
# with both sides on CPU 0 (`--pin same` vs `taskset -c 0`), since placement dominates here.
. "$(dirname "$0")/common.sh"  # strict mode, cd to the root, $pairs, $out
loops=20000
rest=(--total 1MiB --requests 20 --per-connection 20 --clients 2)
cargo build --release --quiet -p sockets
cc -O2 -o "$out/lat_sock" benches/reference/lat_sock.c
for i in $(seq "$pairs"); do
    ./target/release/sockets --json --messages $loops "${rest[@]}" > "$out/placed-$i.json"
    "$out/lat_sock" unix $loops | awk '{print $4}' > "$out/cu-$i"
    "$out/lat_sock" tcp $loops | awk '{print $4}' > "$out/ct-$i"
    taskset -c 0 "$out/lat_sock" unix $loops | awk '{print $4}' > "$out/scu-$i"
    taskset -c 0 "$out/lat_sock" tcp $loops | awk '{print $4}' > "$out/sct-$i"
    ./target/release/sockets --json --pin same --messages $loops "${rest[@]}" > "$out/same-$i.json"
done
python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def mean(path, mech):
    r = json.load(open(path))
    m = next(x for x in r["measurements"]
             if x["name"] == "round_trip" and x["variant"] == "process" and x["mechanism"] == mech)
    return m["mean"] / 1000
num = lambda p: float(open(p).read())
ratios = {k: [] for k in ("unix", "tcp", "unix-same", "tcp-same")}
for i in range(1, pairs + 1):
    row = [("unix", mean(f"{out}/placed-{i}.json", "socketpair"), num(f"{out}/cu-{i}")),
           ("tcp", mean(f"{out}/placed-{i}.json", "tcp"), num(f"{out}/ct-{i}")),
           ("unix-same", mean(f"{out}/same-{i}.json", "socketpair"), num(f"{out}/scu-{i}")),
           ("tcp-same", mean(f"{out}/same-{i}.json", "tcp"), num(f"{out}/sct-{i}"))]
    print(f"pair {i}: " + " | ".join(f"{k} {o:6.2f} us vs C {c:6.2f} us (x{o/c:.2f})" for k, o, c in row))
    for k, o, c in row:
        ratios[k].append(o / c)
print("median ratios (ours/C, < 1.0 = ours faster): " +
      ", ".join(f"{k} x{statistics.median(v):.2f} (x{min(v):.2f}-x{max(v):.2f})" for k, v in ratios.items()))
PY
