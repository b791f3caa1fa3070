#!/usr/bin/env bash
# Measures `pipes` beside its reference tools on this machine, alternating, and prints ratios
# (ours / theirs for time, theirs / ours for throughput: below 1.0 means ours is faster).
#
#   benches/reference/compare-pipes.sh [PAIRS]     (needs perf, cc, python3)
#
# Round trip: pipes' process mean vs `perf bench sched pipe`, pipes' thread-over-pipe mean vs
# `perf bench sched pipe -T` (perf prints a mean: usecs/op), once placed by the scheduler and
# once with both sides on CPU 0 (`--pin same` vs `taskset -c 0`), since placement dominates. Throughput: pipes' process pipe
# stream vs lmbench's bw_pipe method (bw_pipe.c here), both 64 KiB writes of 32 MiB streams.
. "$(dirname "$0")/common.sh"  # strict mode, cd to the root, $pairs, $out
loops=20000
cargo build --release --quiet -p pipes
cc -O2 -o "$out/bw_pipe" benches/reference/bw_pipe.c
for i in $(seq "$pairs"); do
    ./target/release/pipes --json --messages $loops --total 32MiB > "$out/pipes-$i.json"
    perf bench sched pipe -l $loops 2>/dev/null | awk '/usecs\/op/ {print $1}' > "$out/perf-$i"
    perf bench sched pipe -T -l $loops 2>/dev/null | awk '/usecs\/op/ {print $1}' > "$out/perfT-$i"
    ./target/release/pipes --json --pin same --messages $loops --total 32MiB > "$out/same-$i.json"
    for _ in 1 2 3 4 5; do taskset -c 0 "$out/bw_pipe" $((32 << 20)); done | awk '{print $2}' > "$out/sbw-$i"
    taskset -c 0 perf bench sched pipe -l $loops 2>/dev/null | awk '/usecs\/op/ {print $1}' > "$out/sperf-$i"
    taskset -c 0 perf bench sched pipe -T -l $loops 2>/dev/null | awk '/usecs\/op/ {print $1}' > "$out/sperfT-$i"
    for _ in 1 2 3 4 5; do "$out/bw_pipe" $((32 << 20)); done | awk '{print $2}' > "$out/bw-$i"
done
python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
rows, same = [], []
def load(path):
    r = json.load(open(path))
    return {f"{x['name']}/{x['variant']}/{x['mechanism']}": x for x in r["measurements"]}
for i in range(1, pairs + 1):
    m = load(f"{out}/pipes-{i}.json")
    s = load(f"{out}/same-{i}.json")
    same.append((s["round_trip/process/pipe"]["mean"] / 1000, float(open(f"{out}/sperf-{i}").read()),
                 s["round_trip/thread/pipe"]["mean"] / 1000, float(open(f"{out}/sperfT-{i}").read()),
                 s["throughput/process/pipe"]["value"],
                 statistics.median(float(x) for x in open(f"{out}/sbw-{i}").read().split())))
    proc_us = m["round_trip/process/pipe"]["mean"] / 1000
    thr_us = m["round_trip/thread/pipe"]["mean"] / 1000
    perf_us = float(open(f"{out}/perf-{i}").read())
    perft_us = float(open(f"{out}/perfT-{i}").read())
    ours_bw = m["throughput/process/pipe"]["value"]
    bw = statistics.median(float(x) for x in open(f"{out}/bw-{i}").read().split())
    rows.append((proc_us, perf_us, thr_us, perft_us, ours_bw, bw))
    print(f"pair {i}: process rt {proc_us:7.2f} us vs perf {perf_us:7.2f} us (x{proc_us/perf_us:.2f}) | "
          f"thread rt {thr_us:7.2f} us vs perf -T {perft_us:7.2f} us (x{thr_us/perft_us:.2f}) | "
          f"stream {ours_bw:7.0f} MiB/s vs bw_pipe {bw:7.0f} MiB/s (x{bw/ours_bw:.2f})")
    print(f"        same CPU: process {same[-1][0]:7.2f} us vs perf {same[-1][1]:7.2f} us (x{same[-1][0]/same[-1][1]:.2f}) | "
          f"thread {same[-1][2]:7.2f} us vs perf -T {same[-1][3]:7.2f} us (x{same[-1][2]/same[-1][3]:.2f}) | "
          f"stream {same[-1][4]:7.0f} MiB/s vs bw_pipe {same[-1][5]:7.0f} MiB/s (x{same[-1][5]/same[-1][4]:.2f})")
med = statistics.median
print(f"median ratios (ours/reference time; reference/ours throughput; < 1.0 = ours faster): "
      f"process x{med([a/b for a,b,*_ in rows]):.2f}, thread x{med([r[2]/r[3] for r in rows]):.2f}, "
      f"throughput x{med([r[5]/r[4] for r in rows]):.2f}; on one CPU: process "
      f"x{med([r[0]/r[1] for r in same]):.2f}, thread x{med([r[2]/r[3] for r in same]):.2f}, "
      f"throughput x{med([r[5]/r[4] for r in same]):.2f}")
PY
