#!/usr/bin/env bash
# The forwarder against the nginx anchor (../shared/anchors/nginx-anchor.conf, run privately on
# :18181 and :18180, its two servers as two nginx instances): nginx's static chat JSON is the
# backend; nginx's reverse proxy in front of it is the proxy to beat. All forwarder features are
# on (routing, breaker, retries, admission, gzip for clients that ask) except the cache.
#
#   1. throughput: wrk -t2 -c64 POST, alternating nginx proxy / forwarder, A B A B, ratio of
#      medians, and each proxy's own CPU per request (user + system, from /proc)
#   2. overhead at a fixed rate (oha -q, latency-corrected): direct vs nginx vs forwarder, p50/p99
#   3. streaming: TTFT p50/p99 with loadgen, straight to a mock vs through the forwarder
#   4. memory: RSS with 10,000 open client connections; peak RSS over the whole run
#
# Usage: bench/forwarder.sh [rounds] [seconds] [rate]   (defaults 3 10 5000)
# Needs: wrk and nginx-light (apt-get install -y wrk nginx-light); oha for part 2 (cargo install oha).
# FORWARDER=path uses that binary instead of building target/release/forwarder; part 3 uses
# LOADGEN (default target/release/loadgen) and is skipped without it.
source "$(dirname "$0")/lib.sh"
rounds=${1:-3}; seconds=${2:-10}; rate=${3:-5000}
need wrk "apt-get install -y wrk"
need nginx "apt-get install -y nginx-light"

if [ -z "${FORWARDER:-}" ]; then
  (cd "$root" && cargo build --release -p forwarder --quiet)
fi
FORWARDER=$forwarder

# The anchor's two servers run as two private nginx instances (see anchor_part in lib.sh): the
# static backend and the reverse proxy.
# Each proxy then sits in front of a backend in another process (as the forwarder does), and the
# CPU each proxy spends per request can be read from its own processes.
backend_port=${BACKEND_PORT:-18181}; proxy_port=${PROXY_PORT:-18180}
anchor_part static "$backend_port" "$proxy_port" > "$out/nginx-static.conf"
anchor_part proxy "$backend_port" "$proxy_port" > "$out/nginx-proxy.conf"
cleanup() {
  [ -n "${FWD_PID:-}" ] && kill "$FWD_PID" 2>/dev/null || true
  for which in static proxy; do
    [ -f "$out/nginx-$which.pid" ] && kill "$(cat "$out/nginx-$which.pid")" 2>/dev/null || true
  done
}
trap cleanup EXIT
nginx -c "$out/nginx-static.conf" -p "$out"
nginx -c "$out/nginx-proxy.conf" -p "$out"
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$proxy_port/" && break; sleep 0.1; done

"$FORWARDER" --listen 127.0.0.1:0 --backend "http://127.0.0.1:$backend_port" > "$out/forwarder.out" 2> "$out/forwarder.err" &
FWD_PID=$!
for _ in $(seq 100); do
  FWD=$(sed -n 's|^listening on http://||p' "$out/forwarder.out" | head -n 1)
  [ -n "$FWD" ] && curl -sf -o /dev/null "http://$FWD/readyz" && break
  sleep 0.05
done
[ -n "${FWD:-}" ] || { echo "forwarder did not start: $(cat "$out/forwarder.err")" >&2; exit 1; }

body='{"model":"mock-llm","messages":[{"role":"user","content":"Explain consistent hashing."}],"stream":false}'
cat > "$out/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA
path=/v1/chat/completions

# CPU time (user, system; in clock ticks) of every thread of the given processes.
cpu_ticks() {
  local user=0 system=0 task fields
  for pid in "$@"; do
    for task in /proc/"$pid"/task/*; do
      read -ra fields < <(sed 's/.*) //' "$task/stat")
      user=$((user + fields[11])); system=$((system + fields[12]))
    done
  done
  echo "$user $system"
}
tick_us=$((1000000 / $(getconf CLK_TCK)))
nginx_proxy_pids=$(pgrep -P "$(cat "$out/nginx-proxy.pid")" | tr '\n' ' ')
# One wrk run against a proxy; prints "req/s cpu_us_per_request user_us_per_request".
measure() { # $1 = url, rest = the proxy's pids
  local url=$1; shift
  local before after result requests
  read -ra before < <(cpu_ticks "$@")
  result=$(wrk -t2 -c64 -d"${seconds}s" -s "$out/post.lua" "$url")
  read -ra after < <(cpu_ticks "$@")
  requests=$(awk '/requests in/ { print $1 }' <<< "$result")
  awk -v rps="$(awk '/Requests\/sec/ { print $2 }' <<< "$result")" -v n="$requests" -v t="$tick_us" \
    -v u=$((after[0] - before[0])) -v s=$((after[1] - before[1])) \
    'BEGIN { printf "%s %.1f %.1f\n", rps, (u + s) * t / n, u * t / n }'
}

echo "== throughput: wrk -t2 -c64 -d${seconds}s -s post.lua, nginx proxy (:$proxy_port) vs forwarder ($FWD), $rounds rounds"
echo "   (cpu: the proxy's own CPU per request, user + system, and user alone)"
declare -a N F
for r in $(seq "$rounds"); do
  N+=("$(measure "http://127.0.0.1:$proxy_port$path" $nginx_proxy_pids)")
  F+=("$(measure "http://$FWD$path" "$FWD_PID")")
  read -r nr nc nu <<< "${N[-1]}"; read -r fr fc fu <<< "${F[-1]}"
  echo "round $r: nginx $nr req/s (cpu $nc us/req, user $nu) | forwarder $fr req/s (cpu $fc us/req, user $fu)"
done
python3 - "$(IFS=';'; echo "${N[*]}")" "$(IFS=';'; echo "${F[*]}")" <<'PY'
import statistics, sys
n, f = ([list(map(float, r.split())) for r in a.split(";")] for a in sys.argv[1:3])
med = lambda rows, i: statistics.median(r[i] for r in rows)
print(f"median: nginx {med(n, 0):.0f} req/s, forwarder {med(f, 0):.0f} req/s")
print(f"forwarder / nginx = {med(f, 0) / med(n, 0):.2f}  (per round: "
      + ", ".join(f"{b[0] / a[0]:.2f}" for a, b in zip(n, f)) + ")")
print(f"proxy CPU per request: nginx {med(n, 1):.1f} us (user {med(n, 2):.1f}), "
      f"forwarder {med(f, 1):.1f} us (user {med(f, 2):.1f})")
PY

if command -v oha >/dev/null; then
  echo "== overhead at ${rate} req/s: oha -c 64 -q $rate -z ${seconds}s --latency-correction, direct vs nginx vs forwarder"
  lat() {
    oha --no-tui -c 64 -q "$rate" -z "${seconds}s" --latency-correction -m POST \
      -T application/json -d "$body" --output-format json "$1" |
      python3 -c 'import json,sys; d=json.load(sys.stdin); p=d["latencyPercentiles"]; print(p["p50"]*1e6, p["p99"]*1e6, d["summary"]["requestsPerSec"])'
  }
  declare -a D P W
  for r in $(seq "$rounds"); do
    D+=("$(lat "http://127.0.0.1:$backend_port$path")")
    P+=("$(lat "http://127.0.0.1:$proxy_port$path")")
    W+=("$(lat "http://$FWD$path")")
    echo "round $r (p50 us, p99 us, req/s): direct ${D[-1]} | nginx ${P[-1]} | forwarder ${W[-1]}"
  done
  python3 - "$(IFS=';'; echo "${D[*]}")" "$(IFS=';'; echo "${P[*]}")" "$(IFS=';'; echo "${W[*]}")" <<'PY'
import statistics, sys
def rows(a): return [list(map(float, r.split())) for r in a.split(";")]
d, p, w = (rows(a) for a in sys.argv[1:4])
med = lambda rs, i: statistics.median(r[i] for r in rs)
for name, rs in (("nginx", p), ("forwarder", w)):
    print(f"{name} adds p50 {med(rs, 0) - med(d, 0):+.0f} us, p99 {med(rs, 1) - med(d, 1):+.0f} us over direct "
          f"(direct p50 {med(d, 0):.0f} us, p99 {med(d, 1):.0f} us)")
PY
else
  echo "== overhead: skipped (oha not installed: cargo install oha)"
fi

loadgen=${LOADGEN:-$root/target/release/loadgen}
if [ -x "$loadgen" ]; then
  echo "== streaming TTFT: loadgen run --users 32 --stream, mock (ttft 5ms, 500 tokens/s, 16 tokens), direct vs forwarder"
  "$loadgen" mock --listen 127.0.0.1:0 --ttft 5ms --tokens-per-s 500 --output-tokens 16 > "$out/mock.out" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 100); do MOCK=$(sed -n 's|^listening on http://||p' "$out/mock.out" | head -n 1); [ -n "$MOCK" ] && break; sleep 0.05; done
  "$FORWARDER" --listen 127.0.0.1:0 --backend "http://$MOCK" > "$out/fwd2.out" 2>&1 &
  FWD2_PID=$!
  for _ in $(seq 100); do FWD2=$(sed -n 's|^listening on http://||p' "$out/fwd2.out" | head -n 1); [ -n "$FWD2" ] && curl -sf -o /dev/null "http://$FWD2/readyz" && break; sleep 0.05; done
  ttft() { awk -F, '$1 == "ttft_p50" || $1 == "ttft_p99" { printf "%s %s ms  ", $1, $2 }' "$1/summary.csv"; }
  for r in $(seq "$rounds"); do
    "$loadgen" run --target "http://$MOCK/v1/chat/completions" --users 32 --stream --duration "${seconds}s" --out "$out/ttft-direct-$r" > /dev/null 2>&1 || true
    "$loadgen" run --target "http://$FWD2/v1/chat/completions" --users 32 --stream --duration "${seconds}s" --out "$out/ttft-fwd-$r" > /dev/null 2>&1 || true
    echo "round $r: direct $(ttft "$out/ttft-direct-$r")| forwarder $(ttft "$out/ttft-fwd-$r")"
  done
  kill "$FWD2_PID" "$MOCK_PID" 2>/dev/null || true
else
  echo "== streaming TTFT: skipped (no loadgen at $loadgen: cargo build --release -p loadgen)"
fi

echo "== memory: 10,000 open client connections, each having sent one request"
python3 - "$FWD" "$FWD_PID" <<'PY'
import resource, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
conns = []
for _ in range(10000):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    conns.append(s)
for s in conns:
    s.recv(4096)
status = open(f"/proc/{sys.argv[2]}/status").read()
rss = next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS"))
print(f"{len(conns)} connections open: forwarder RSS {rss / 1024:.1f} MiB")
PY
echo "== forwarder peak RSS over the whole run: $(awk '/VmHWM/ { print $2 / 1024 " MiB" }' "/proc/$FWD_PID/status")"
echo "(raw output in $out)"
