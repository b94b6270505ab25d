#!/usr/bin/env bash
# What the fault proxy adds to a request with no toxic set, next to what a plain TCP relay adds:
# loadgen against the nginx static anchor straight (A), through `loadgen chaos-proxy` (B) and
# through an nginx `stream` relay (C, the anchor: a relay that does nothing but copy bytes),
# alternating A B C A B C; prints each round's p50/p99 and the added p50/p99 of B and C (median
# over rounds of B - A, C - A). One user sending back to back by default: each latency is then
# one round trip, not queueing behind other users; the static backend has no timer in the path.
# Usage: bench/proxy.sh [rounds] [seconds] [users]   (defaults 6 5 1)
# Needs nginx-light and its stream module (apt-get install -y nginx-light libnginx-mod-stream).
source "$(dirname "$0")/lib.sh"
rounds=${1:-6}; seconds=${2:-5}; users=${3:-1}
need nginx "apt-get install -y nginx-light"
stream_module=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$stream_module" ] || { echo "missing the nginx stream module: apt-get install -y libnginx-mod-stream" >&2; exit 2; }
build

backend_port=18281; relay_port=18282
anchor_part static "$backend_port" 18280 > "$out/nginx-static.conf"
cat > "$out/nginx-relay.conf" <<CONF
load_module $stream_module;
worker_processes auto;
daemon on;
error_log $out/nginx-relay-error.log warn;
pid $out/nginx-relay.pid;
events { worker_connections 16384; }
stream { server { listen 127.0.0.1:$relay_port; proxy_pass 127.0.0.1:$backend_port; } }
CONF
nginx -c "$out/nginx-static.conf" -p "$out"
nginx -c "$out/nginx-relay.conf" -p "$out"
"$loadgen" chaos-proxy --upstream "127.0.0.1:$backend_port" > "$out/proxy.log" 2>&1 &
PROXY_PID=$!
trap 'kill "$PROXY_PID" "$(cat "$out/nginx-static.pid")" "$(cat "$out/nginx-relay.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  PROXY_URL=$(sed -n 's/^listening on //p' "$out/proxy.log" | head -n 1)
  [ -n "$PROXY_URL" ] && break
  sleep 0.05
done
[ -n "$PROXY_URL" ] || { echo "chaos-proxy did not start" >&2; exit 1; }

path=/v1/chat/completions
one() { # name url round
  "$loadgen" run --target "$2$path" --users "$users" --duration "${seconds}s" --out "$out/$1-$3" > /dev/null
  echo "$(metric "$out/$1-$3" latency_p50) $(metric "$out/$1-$3" latency_p99) $(metric "$out/$1-$3" failed)"
}

echo "== $users user(s), ${seconds}s, $rounds rounds: direct (A), chaos-proxy (B), nginx stream relay (C)"
rows=()
for r in $(seq "$rounds"); do
  read -r a50 a99 afail <<< "$(one direct "http://127.0.0.1:$backend_port" "$r")"
  read -r b50 b99 bfail <<< "$(one proxied "$PROXY_URL" "$r")"
  read -r c50 c99 cfail <<< "$(one relayed "http://127.0.0.1:$relay_port" "$r")"
  echo "round $r (p50/p99 ms, failed): direct $a50/$a99 ($afail) | chaos-proxy $b50/$b99 ($bfail) | nginx relay $c50/$c99 ($cfail)"
  rows+=("$a50 $a99 $b50 $b99 $c50 $c99")
done
printf '%s\n' "${rows[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
added = lambda i, j: statistics.median(r[i] - r[j] for r in rows) * 1000
print(f"added p50 / p99 (median of rounds): chaos-proxy {added(2, 0):+.0f} / {added(3, 1):+.0f} us, "
      f"nginx stream relay {added(4, 0):+.0f} / {added(5, 1):+.0f} us")
'
