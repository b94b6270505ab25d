#!/usr/bin/env bash
# What the fault proxy adds to a request with no toxic set: loadgen against a mock, straight (A)
# and through `loadgen chaos-proxy` (B), alternating A B A B; prints each round's p50/p99 and
# the added p50/p99 (median over rounds of B - A). One user sending back to back by default:
# each latency is then one round trip, not queueing behind other users.
# Usage: bench/proxy.sh [rounds] [seconds] [users]   (defaults 6 5 1)
source "$(dirname "$0")/lib.sh"
rounds=${1:-6}; seconds=${2:-5}; users=${3:-1}
build

# No think time in the mock (no timer in the path), one token: the relay is what is measured.
start_mock --ttft 0ms --output-tokens 1 --tokens-per-s 1000000
"$loadgen" chaos-proxy --upstream "${MOCK_URL#http://}" > "$out/proxy.log" 2>&1 &
PROXY_PID=$!
trap 'kill "$MOCK_PID" "$PROXY_PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  PROXY_URL=$(sed -n 's/^listening on //p' "$out/proxy.log" | head -n 1)
  [ -n "$PROXY_URL" ] && break
  sleep 0.05
done
[ -n "$PROXY_URL" ] || { echo "chaos-proxy did not start" >&2; exit 1; }

one() { # name url round
  "$loadgen" run --target "$2" --users "$users" --duration "${seconds}s" --out "$out/$1-$3" > /dev/null
  echo "$(metric "$out/$1-$3" latency_p50) $(metric "$out/$1-$3" latency_p99) $(metric "$out/$1-$3" failed)"
}

echo "== $users user(s), no think time, ${seconds}s, $rounds rounds: direct (A) vs through chaos-proxy (B)"
added=()
for r in $(seq "$rounds"); do
  read -r a50 a99 afail <<< "$(one direct "$MOCK_URL" "$r")"
  read -r b50 b99 bfail <<< "$(one proxied "$PROXY_URL" "$r")"
  echo "round $r: direct p50 $a50 ms p99 $a99 ms (failed $afail) | proxied p50 $b50 ms p99 $b99 ms (failed $bfail)"
  added+=("$a50 $a99 $b50 $b99")
done
printf '%s\n' "${added[@]}" | python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
d50 = statistics.median(b50 - a50 for a50, a99, b50, b99 in rows) * 1000
d99 = statistics.median(b99 - a99 for a50, a99, b50, b99 in rows) * 1000
print(f"added by the proxy (median of rounds): p50 {d50:+.0f} us, p99 {d99:+.0f} us")
'
