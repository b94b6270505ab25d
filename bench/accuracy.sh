#!/usr/bin/env bash
# Timing accuracy: (1) against the mock with a fixed 20 ms answer, latency_p50 vs 20 ms;
# (2) open model: achieved rate vs target at several rates; (3) coordinated omission: a backend
# frozen for 1 s (SIGSTOP/SIGCONT) during a constant-rate run: corrected P99 shows the stall,
# service-time P99 does not (wrk2's point).
# Usage: bench/accuracy.sh
source "$(dirname "$0")/lib.sh"
build

echo "== fixed 20 ms backend, 16 users: loadgen and wrk on the same mock, alternating"
need wrk "apt-get install -y wrk"
start_mock --ttft 20ms --output-tokens 1 --tokens-per-s 1000
script=$(wrk_post_script)
for r in 1 2; do
  "$loadgen" run --target "$MOCK_URL" --users 16 --duration 8s --out "$out/fixed-$r" > /dev/null
  lg=$(metric "$out/fixed-$r" latency_p50)
  wk=$(wrk -t2 -c16 -d8s --latency -s "$script" "$MOCK_URL/v1/chat/completions" | awk '$1 == "50%" { sub("ms", "", $2); print $2 }')
  python3 -c "l=$lg; w=$wk; print(f'round $r: loadgen p50 {l:.3f} ms ({100*(l-20)/20:+.2f} % from 20 ms), wrk p50 {w:.3f} ms; loadgen/wrk {l/w:.3f}')"
done
kill "$MOCK_PID"

echo "== open model: achieved vs target rate (constant arrivals, 6 s each; completions per second, seconds 2-5)"
bash "$anchors/nginx-anchor.sh" start
trap 'bash "$anchors/nginx-anchor.sh" stop' EXIT
for rate in 1000 5000 20000 40000; do
  "$loadgen" run --target http://127.0.0.1:18081/v1/chat/completions --rate "$rate" --arrivals constant \
    --connections 64 --duration 6s --out "$out/rate-$rate" > /dev/null
  python3 - "$out/rate-$rate" "$rate" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/timeseries.csv")))
target = float(sys.argv[2])
# Whole seconds 2..5: past the start, before the drain.
done = sum(int(r["ok"]) + int(r["failed"]) for r in rows if 1.5 < float(r["elapsed_s"]) < 5.5)
achieved = done / 4
dropped = sum(int(r["dropped"]) for r in rows)
print(f"target {target:.0f}/s: achieved {achieved:.0f}/s ({100 * (achieved - target) / target:+.2f} %), dropped {dropped}")
PY
done

echo "== a 1 s stall during a 500/s constant-rate run"
start_mock --ttft 2ms --output-tokens 1 --tokens-per-s 1000
( sleep 4; kill -STOP "$MOCK_PID"; sleep 1; kill -CONT "$MOCK_PID" ) &
stall=$!
"$loadgen" run --target "$MOCK_URL" --rate 500 --arrivals constant --connections 8 --duration 10s --out "$out/stall" > /dev/null
wait "$stall"
echo "corrected latency_p99 $(metric "$out/stall" latency_p99) ms, service_time_p99 $(metric "$out/stall" service_time_p99) ms, latency_max $(metric "$out/stall" latency_max) ms"
kill "$MOCK_PID"
