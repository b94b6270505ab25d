#!/usr/bin/env bash
# Max throughput at 64 keep-alive HTTP/1.1 connections against the nginx static anchor, every
# request recorded: loadgen vs wrk (and oha when installed), alternating A B A B in one run.
# Usage: bench/throughput.sh [rounds] [seconds]   (needs wrk, nginx-light; oha optional)
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}; seconds=${2:-10}
need wrk "apt-get install -y wrk"; need nginx "apt-get install -y nginx-light"
build
bash "$anchors/nginx-anchor.sh" start
trap 'bash "$anchors/nginx-anchor.sh" stop' EXIT
url=http://127.0.0.1:18081/v1/chat/completions
script=$(wrk_post_script)
have_oha=$(command -v oha >/dev/null && echo yes || echo no)
declare -a L W O
for r in $(seq "$rounds"); do
  "$loadgen" run --target "$url" --users 64 --duration "${seconds}s" --out "$out/lg-$r" > /dev/null
  L+=("$(metric "$out/lg-$r" throughput)")
  W+=("$(wrk -t2 -c64 -d"${seconds}s" -s "$script" "$url" | awk '/Requests\/sec/ { print $2 }')")
  if [ "$have_oha" = yes ]; then
    O+=("$(oha --no-tui -c 64 -z "${seconds}s" -m POST -T application/json -d "$POST_BODY" --output-format json "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["requestsPerSec"])')")
  fi
  echo "round $r: loadgen ${L[-1]} req/s, wrk ${W[-1]} req/s${O:+, oha ${O[-1]} req/s}"
done
python3 - "${L[*]}" "${W[*]}" "${O[*]:-}" <<'PY'
import statistics, sys
l, w = [list(map(float, a.split())) for a in sys.argv[1:3]]
o = list(map(float, sys.argv[3].split())) if sys.argv[3].strip() else []
print(f"median: loadgen {statistics.median(l):.0f} req/s, wrk {statistics.median(w):.0f} req/s")
print(f"loadgen / wrk = {statistics.median(l) / statistics.median(w):.2f}  (per round: " +
      ", ".join(f"{a / b:.2f}" for a, b in zip(l, w)) + ")")
if o:
    print(f"oha / wrk = {statistics.median(o) / statistics.median(w):.2f}")
PY
