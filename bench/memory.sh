#!/usr/bin/env bash
# loadgen's resident memory at 20,000 users (burst.yaml) and over a longer steady run:
# samples VmRSS of the loadgen process once a second, prints the peak and minute marks.
# Usage: bench/memory.sh [burst duration] [steady duration]
source "$(dirname "$0")/lib.sh"
burst=${1:-1m}; steady=${2:-10m}
build
sample() { # run a scenario, sample loadgen's RSS (kB) every second into $2
  "$loadgen" run "$root/scenarios/$1" --duration "$3" --out "$out/$1" > "$out/$1.log" 2>&1 &
  local pid=$!
  : > "$2"
  while kill -0 "$pid" 2>/dev/null; do
    awk '/VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null >> "$2" || true
    sleep 1
  done
  wait "$pid" || true
}
sample burst.yaml "$out/burst.rss" "$burst"
echo "burst.yaml (20,000 users, $burst): peak loadgen RSS $(sort -n "$out/burst.rss" | tail -n 1 | awk '{ printf "%.0f MB", $1 / 1024 }')"
sample steady.yaml "$out/steady.rss" "$steady"
python3 - "$out/steady.rss" <<'PY'
import sys
rss = [int(x) / 1024 for x in open(sys.argv[1]) if x.strip()]
marks = {m: rss[min(len(rss) - 1, 60 * m)] for m in (1, len(rss) // 60 - 1) if m >= 1}
print("steady.yaml RSS by minute:", ", ".join(f"min {m}: {v:.0f} MB" for m, v in marks.items()))
if len(marks) == 2:
    a, b = marks.values()
    print(f"change from first to last mark: {100 * (b - a) / a:+.1f} %")
PY
