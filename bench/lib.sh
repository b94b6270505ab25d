# Shared helpers for the bench scripts (sourced, not run).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
anchors=${ANCHORS:-$root/../shared/anchors}
loadgen=${LOADGEN:-$root/target/release/loadgen}
forwarder=${FORWARDER:-$root/target/release/forwarder}
out=${BENCH_OUT:-$(mktemp -d /tmp/loadgen-bench.XXXXXX)}
mkdir -p "$out"

need() { command -v "$1" >/dev/null || { echo "missing $1: $2" >&2; exit 2; }; }
# BENCH_NO_BUILD=1 uses the binaries already in target/release.
build() { [ -n "${BENCH_NO_BUILD:-}" ] || (cd "$root" && cargo build --release --workspace --quiet); }

# The value of a metric in a run folder's summary.csv.
metric() { awk -F, -v m="$2" '$1 == m { print $2 }' "$1/summary.csv"; }

# Starts `loadgen mock` with the given flags; sets MOCK_PID and MOCK_URL.
start_mock() {
  local log="$out/mock.$$.$RANDOM.log"
  "$loadgen" mock --listen 127.0.0.1:0 "$@" > "$log" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 100); do
    MOCK_URL=$(sed -n 's/^listening on //p' "$log" | head -n 1)
    [ -n "$MOCK_URL" ] && return 0
    sleep 0.05
  done
  echo "mock did not start" >&2; exit 1
}

POST_BODY='{"model":"mock-llm","messages":[{"role":"user","content":"Explain consistent hashing to a new engineer."}],"stream":false,"user":"user-1"}'
wrk_post_script() {
  cat > "$out/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$POST_BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
  echo "$out/post.lua"
}

# The anchor config (../shared/anchors/nginx-anchor.conf) with only one of its two servers, as
# its own nginx instance on private ports: `anchor_part static|proxy BACKEND_PORT PROXY_PORT`.
# Private, so anchors other people started (they share ports through reuseport, and one pid
# file) neither serve our traffic nor get stopped by us; its pid file is $out/nginx-<part>.pid.
anchor_part() {
  python3 - "$anchors/nginx-anchor.conf" "$1" "$out" "$2" "$3" <<'PY'
import sys
conf, keep, out, backend, proxy = sys.argv[1:6]
text = open(conf).read().replace("daemon off;", "daemon on;")
text = text.replace("18081", backend).replace("18080", proxy)
text = text.replace("/tmp/nginx-anchor.pid", f"{out}/nginx-{keep}.pid")
text = text.replace("/tmp/nginx-anchor-error.log", f"{out}/nginx-{keep}-error.log")
# Drop the other `server { ... }` block (braces inside '...' strings do not count).
def blocks(text):
    at = 0
    while (start := text.find("\n    server {", at)) >= 0:
        depth, quoted, i = 0, False, start
        while True:
            c = text[i]
            if c == "'":
                quoted = not quoted
            elif not quoted and c == "{":
                depth += 1
            elif not quoted and c == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        yield start, i + 1
        at = i + 1
for start, end in reversed(list(blocks(text))):
    if ("proxy_pass" in text[start:end]) == (keep == "static"):
        text = text[:start] + text[end:]
print(text)
PY
}
