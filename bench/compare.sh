#!/usr/bin/env bash
# Side-by-side load test: the server under test (A, the URL given) against InfluxDB 1.x (B), which this
# script starts itself. Each workload runs A, B, A, B with wrk; the answer is the best-of ratio A/B,
# which holds up on a noisy machine far better than absolute numbers do.
#
#   bench/compare.sh http://127.0.0.1:8086
#   B_URL=http://127.0.0.1:8087 B_LABEL="Tracker --mirror" bench/compare.sh http://127.0.0.1:8086
#
# A must already hold users user0..user99 with passwords password0..password99 (bench/run.sh prepares that).
# B_URL names a B that is already running and holds the same users (another Tracker, say): then no
# InfluxDB is started, B_LABEL names B in the output, B_PID is its process for the memory line, and
# B_METRICS, a regular expression, picks lines of B's GET /metrics to print after each of B's runs.
# Environment: DUR seconds per run (10), WORKLOADS (all), SETTLE seconds between runs (1),
# INFLUX_PORT (18086), A_PID (the server's process id, to report its memory), KEEP=1 to keep the
# scratch folder (wrk's raw reports, InfluxDB's log) for a look afterwards.
set -euo pipefail

A=${1:?usage: bench/compare.sh http://HOST:PORT-of-the-server-under-test}
A=${A%/}
DUR=${DUR:-10}
SETTLE=${SETTLE:-1}
WORKLOADS=${WORKLOADS:-batch live query-hour query-day query-groupby}
INFLUX_PORT=${INFLUX_PORT:-18086}
USERS=100
here=$(cd "$(dirname "$0")" && pwd)

# The day of samples the query workloads read: user1, 1 Hz, 2025-11-24 00:00:00Z for 24 hours.
DAY_START=1763942400
DAY_END=$((DAY_START + 86400))
# Each round writes new timestamps, well before that day, so nothing is overwritten and queries stay clean.
batch_t0() { echo $((1000000000 + ($1 - 1) * 250000000)); } # seconds; 5,000 s of data per request
# Live rounds stay inside one week (Monday 2020-09-14 UTC, one day apart): InfluxDB keeps a week per
# shard, and creating 100 shards mid-run would measure that instead of the steady state.
LIVE_WEEK=1600041600
live_t0_ms() { echo $(((LIVE_WEEK + 3600 + ($1 - 1) * 86400) * 1000)); } # milliseconds

command -v wrk >/dev/null 2>&1 || { echo "error: wrk not found (apt-get install -y wrk influxdb)" >&2; exit 2; }
command -v curl >/dev/null 2>&1 || { echo "error: curl not found (apt-get install -y curl)" >&2; exit 2; }

work=$(mktemp -d)
influx_pid=
cleanup() {
  if [ -n "$influx_pid" ]; then
    kill "$influx_pid" 2>/dev/null || true
    wait "$influx_pid" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

basic() { printf '%s' "$1" | base64 -w0; }
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@" || true; }

# --- B: a private InfluxDB with auth on and the same users -------------------------------------------
B=${B_URL:-}
B=${B%/}
B_LABEL=${B_LABEL:-InfluxDB}
if [ -n "$B" ]; then
  [ "$(http_code "$B/ping")" = 204 ] || { echo "error: B ($B) does not answer GET /ping with 204" >&2; exit 2; }
  echo "B is $B_LABEL on $B"
elif command -v influxd >/dev/null 2>&1; then
  B=http://127.0.0.1:$INFLUX_PORT
  rpc_port=$((INFLUX_PORT + 2))
  for p in "$INFLUX_PORT" "$rpc_port"; do
    port_in_use "$p" && { echo "error: port $p is in use; pick another with INFLUX_PORT" >&2; exit 2; }
  done
  cat >"$work/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$rpc_port"
[meta]
  dir = "$work/influx/meta"
[data]
  dir = "$work/influx/data"
  wal-dir = "$work/influx/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  auth-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
CONF
  echo "starting $(influxd version 2>/dev/null | head -n1) on $B"
  influxd -config "$work/influxdb.conf" >"$work/influxd.log" 2>&1 &
  influx_pid=$!
  for _ in $(seq 100); do
    [ "$(http_code "$B/ping")" = 204 ] && break
    kill -0 "$influx_pid" 2>/dev/null || { echo "error: influxd exited:" >&2; tail -n 20 "$work/influxd.log" >&2; exit 1; }
    sleep 0.2
  done
  [ "$(http_code "$B/ping")" = 204 ] || { echo "error: influxd did not answer /ping" >&2; exit 1; }

  influxql() { # user:password statements...
    local code
    code=$(http_code -XPOST "$B/query" ${1:+-u "$1"} --data-urlencode "q=$2")
    [ "$code" = 200 ] || { echo "error: InfluxDB refused '$2' (HTTP $code)" >&2; return 1; }
  }
  # With auth on, the first user may be created without credentials and must be an admin.
  influxql "" "CREATE USER bench_admin WITH PASSWORD 'bench_admin' WITH ALL PRIVILEGES"
  echo "creating $USERS users and databases on B"
  for i in $(seq 0 $((USERS - 1))); do
    influxql bench_admin:bench_admin \
      "CREATE DATABASE user$i; CREATE USER user$i WITH PASSWORD 'password$i'; GRANT ALL ON user$i TO user$i"
  done
else
  echo "influxd not found: measuring only the server under test (apt-get install -y influxdb for the comparison)"
fi
sides=(A)
[ -n "$B" ] && sides+=(B)
url_of() { if [ "$1" = A ]; then echo "$A"; else echo "$B"; fi; }

# --- the day of samples for the query workloads ------------------------------------------------------
python3 - "$work" "$DAY_START" <<'PY'
import math, sys
work, start = sys.argv[1], int(sys.argv[2])
def line(i: int) -> str:
    return (f"samples lat={52.52 + 0.015 * math.sin(i / 600):.6f},lng={13.40 + 0.02 * math.cos(i / 600):.6f},"
            f"alt_m={40 + 8 * math.sin(i / 1800):.1f},spd_kph={24 + 4 * math.sin(i / 75):.2f},"
            f"hr_bpm={135 + round(18 * math.sin(i / 400))},cad_rpm={86 + i % 8},"
            f"pwr_w={210 + round(55 * math.sin(i / 150))},dist_km={i * 0.0067:.3f} {start + i}")
for chunk, first in enumerate(range(0, 86400, 14400)):   # 6 requests of 14,400 lines (4 hours each)
    with open(f"{work}/day{chunk}.lp", "w") as f:
        f.write("\n".join(line(i) for i in range(first, first + 14400)) + "\n")
PY
for side in "${sides[@]}"; do
  url=$(url_of "$side")
  for f in "$work"/day*.lp; do
    code=$(http_code -XPOST -u user1:password1 "$url/write?db=user1&precision=s" --data-binary @"$f")
    [ "$code" = 204 ] || { echo "error: loading the query day into $side ($url) failed: HTTP $code" >&2; exit 1; }
  done
done
echo "loaded 86,400 samples of user1 into ${sides[*]}"

# Warm-up: WARMUP_ROUNDS writes per user and side, each on a new connection, so that first-time costs
# (creating files and shards, checking each password once) are paid before anything is measured. A
# server with several worker processes checks a password once in each worker, and the kernel hands
# each new connection to any of them: after 12 rounds a given user is unchecked in a given worker of
# two with a chance of 1 in 4,096.
WARMUP_ROUNDS=${WARMUP_ROUNDS:-12}
for side in "${sides[@]}"; do
  url=$(url_of "$side")
  refused=$(for _ in $(seq "$WARMUP_ROUNDS"); do seq 0 $((USERS - 1)); done |
    xargs -P 8 -I{} curl -s -o /dev/null -w '%{http_code}\n' -u user{}:password{} \
      -XPOST "$url/write?db=user{}&precision=s" --data-binary "samples hr_bpm=100 $LIVE_WEEK" | grep -cv '^204$' || true)
  [ "$refused" = 0 ] || {
    echo "error: warm-up writes to $side ($url): $refused of $((USERS * WARMUP_ROUNDS)) not answered 204" >&2; exit 1
  }
done
echo "warmed up: $WARMUP_ROUNDS writes per user on ${sides[*]}"

# --- workloads ----------------------------------------------------------------------------------------
export USERS
for i in $(seq 0 $((USERS - 1))); do export "BASIC_$i=$(basic "user$i:password$i")"; done
range="time >= ${DAY_START}000ms AND time < ${DAY_END}000ms"  # the way Grafana writes time ranges
hour="time >= $((DAY_END - 3600))000ms AND time < ${DAY_END}000ms"

# workload round url -> runs wrk, writes its report to stdout
run_wrk() {
  local workload=$1 round=$2 url=$3
  local common=(wrk -t1 -d"${DUR}s" --timeout 30s --latency)
  case $workload in
    batch) env DB=user0 BASIC="$BASIC_0" T0="$(batch_t0 "$round")" "${common[@]}" -c4 -s "$here/batch.lua" "$url" ;;
    live) env T0_MS="$(live_t0_ms "$round")" "${common[@]}" -c100 -s "$here/live.lua" "$url" ;;
    query-hour) env BASIC="$BASIC_1" QUERY="SELECT * FROM samples WHERE $hour" "${common[@]}" -c4 -s "$here/query.lua" "$url" ;;
    query-day) env BASIC="$BASIC_1" QUERY="SELECT * FROM samples WHERE $range" "${common[@]}" -c2 -s "$here/query.lua" "$url" ;;
    query-groupby)
      env BASIC="$BASIC_1" QUERY="SELECT mean(hr_bpm),max(pwr_w) FROM samples WHERE $range GROUP BY time(1m)" \
        "${common[@]}" -c2 -s "$here/query.lua" "$url" ;;
    *) echo "unknown workload $workload" >&2; return 2 ;;
  esac
}

# wrk report -> "req_s p50_ms p99_ms non2xx socket_errors" (latencies converted to ms, "-" when absent)
summarize_wrk() {
  awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v + 0 }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { gsub(",", ""); errs = $4 + $6 + $8 + $10 }
    END { printf "%s %s %s %d %d\n", (rps == "" ? "-" : rps), (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99), bad, errs }'
}

echo "running: ${WORKLOADS} (${DUR} s per run, order ${sides[*]} ${sides[*]})"
printf '%-14s %-4s %5s %10s %10s %10s %8s %8s\n' workload side round req/s p50_ms p99_ms non2xx errors
: >"$work/results"
for workload in $WORKLOADS; do
  for round in 1 2; do
    for side in "${sides[@]}"; do
      sleep "$SETTLE"
      raw="$work/$workload-$side-$round.txt"
      run_wrk "$workload" "$round" "$(url_of "$side")" >"$raw" 2>&1 || true
      read -r rps p50 p99 bad errs < <(summarize_wrk <"$raw")
      echo "$workload $side $round $rps $p50 $p99 $bad $errs" >>"$work/results"
      printf '%-14s %-4s %5s %10s %10s %10s %8s %8s\n' "$workload" "$side" "$round" "$rps" "$p50" "$p99" "$bad" "$errs"
      if [ "$rps" = - ]; then echo "  wrk said:" >&2; sed 's/^/    /' "$raw" >&2; fi
      if [ "$side" = B ] && [ -n "${B_METRICS:-}" ]; then
        curl -s "$B/metrics" | grep -E "$B_METRICS" | sed 's/^/    B: /' || true
      fi
    done
  done
done

# --- best of the two rounds, and the ratios ------------------------------------------------------------
python3 - "$work/results" "${LINES:-5000}" <<'PY'
import math, sys
from typing import NamedTuple

class Run(NamedTuple):
    rps: float
    p50_ms: float
    non2xx: int
    errors: int

runs: dict[tuple[str, str], list[Run]] = {}
order: list[str] = []
for line in open(sys.argv[1]):
    workload, side, _round, rps, p50, _p99, non2xx, errors = line.split()
    if workload not in order:
        order.append(workload)
    if rps != "-":
        p50_ms = float(p50) if p50 != "-" else math.nan
        runs.setdefault((workload, side), []).append(Run(float(rps), p50_ms, int(non2xx), int(errors)))
lines_per_request = int(sys.argv[2])

def best(workload: str, side: str) -> Run | None:
    """The run with the most requests/s, preferring runs without error answers (errors come back fast)."""
    candidates = runs.get((workload, side))
    return max(candidates, key=lambda r: (r.non2xx == 0, r.rps)) if candidates else None

def show(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)

print("\nbest of 2 rounds          A req/s    B req/s   A/B req/s    A p50 ms   B p50 ms   B/A p50")
for workload in order:
    a, b = best(workload, "A"), best(workload, "B")
    comparable = bool(a and b and a.rps and b.rps and not a.non2xx and not b.non2xx)
    ratio = a.rps / b.rps if comparable else None
    p50_ratio = b.p50_ms / a.p50_ms if comparable and a.p50_ms else None
    notes = []
    for side, run in (("A", a), ("B", b)):
        if run and not run.rps:
            notes.append(f"{side} completed no request")
        if run and run.non2xx:
            notes.append(f"{side} answered non-2xx: not comparable")
        if run and run.errors:
            notes.append(f"{side} had {run.errors} connection errors/timeouts")
    print(f"{workload:<22} {show(a and a.rps, '.1f'):>10} {show(b and b.rps, '.1f'):>10} {show(ratio, '.2f'):>11}"
          f" {show(a and a.p50_ms, '.2f'):>11} {show(b and b.p50_ms, '.2f'):>10} {show(p50_ratio, '.2f'):>9}"
          f"  {'; '.join(notes)}")
    if workload == "batch":
        lines = [f"{r.rps * lines_per_request:,.0f}" if r else "-" for r in (a, b)]
        print(f"{'  lines/s':<22} {lines[0]:>10} {lines[1]:>10}")
PY

# --- memory after the load -----------------------------------------------------------------------------
process_tree() { # pid: it and all its descendants (a server with worker processes counts whole)
  echo "$1"
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do process_tree "$child"; done
}
memory() { # side pid: resident and peak memory summed over the process and its descendants
  [ -n "$2" ] && [ -r "/proc/$2/status" ] || return 0
  local files=() pid
  for pid in $(process_tree "$2"); do [ -r "/proc/$pid/status" ] && files+=("/proc/$pid/status"); done
  awk -v side="$1" -v n="${#files[@]}" '/^VmRSS:/ { rss += $2 } /^VmHWM:/ { hwm += $2 }
    END { printf "memory %s: resident %.0f MB, peak %.0f MB (%d process%s)\n", side, rss / 1024, hwm / 1024, n, n == 1 ? "" : "es" }' "${files[@]}"
}
echo
memory A "${A_PID:-}"
memory B "${B_PID:-$influx_pid}"
