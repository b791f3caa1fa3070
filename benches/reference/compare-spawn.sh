#!/usr/bin/env bash
# Measures `spawn` beside its reference loops on this machine, alternating, and prints ratios
# (ours / reference, means; below 1.0 means ours is faster).
#
#   benches/reference/compare-spawn.sh [PAIRS]     (needs cc, python3)
#
# fork+wait against lmbench's `lat_proc fork` method, and thread spawn+join against a C
# pthread_create+pthread_join loop (lat_fork.c here). Both sides run N creations per pair. The
# C fork runs twice: as is (about 2 MiB resident) and with as much resident memory as our
# process had when it forked, since fork copies the page tables of what is resident.
. "$(dirname "$0")/common.sh"  # strict mode, cd to the root, $pairs, $out
n=1000
cargo build --release --quiet -p spawn
cc -O2 -pthread -o "$out/lat_fork" benches/reference/lat_fork.c
for i in $(seq "$pairs"); do
    ./target/release/spawn --json --iterations $n --max-rss 1 > "$out/spawn-$i.json"
    "$out/lat_fork" $n > "$out/c-$i.txt"
    rss_mib=$(python3 -c "import json; r=json.load(open('$out/spawn-$i.json')); print(next(m['config']['parent_rss_kib'] for m in r['measurements'] if m['name']=='create') // 1024)")
    "$out/lat_fork" $n "$rss_mib" | sed 's/^fork/fork_same_rss/' > "$out/c-rss-$i.txt"
done
python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
fork, thread, same = [], [], []
for i in range(1, pairs + 1):
    r = json.load(open(f"{out}/spawn-{i}.json"))
    m = {f"{x['name']}/{x['variant']}/{x['mechanism']}": x for x in r["measurements"]}
    c = dict(line.split() for line in open(f"{out}/c-{i}.txt"))
    c.update(dict(line.split() for line in open(f"{out}/c-rss-{i}.txt")))
    ours_fork = m["create/process/fork"]["mean"] / 1000
    ours_thread = m["create/thread/thread-spawn"]["mean"] / 1000
    fork.append(ours_fork / float(c["fork"]))
    thread.append(ours_thread / float(c["pthread"]))
    same.append(ours_fork / float(c["fork_same_rss"]))
    print(f"pair {i}: fork {ours_fork:8.2f} us vs C {float(c['fork']):8.2f} us (x{fork[-1]:.2f}), "
          f"vs C at our RSS {float(c['fork_same_rss']):8.2f} us (x{same[-1]:.2f}) | "
          f"thread {ours_thread:7.2f} us vs C {float(c['pthread']):7.2f} us (x{thread[-1]:.2f})")
print(f"median ratios (ours/C, means): fork x{statistics.median(fork):.2f} "
      f"(x{statistics.median(same):.2f} at equal resident size), thread x{statistics.median(thread):.2f}")
PY
