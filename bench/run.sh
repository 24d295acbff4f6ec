#!/usr/bin/env bash
# `make bench`: start a fresh Tracker with 100 users on a free local port, hand its URL to a
# side-by-side harness, and stop the server again however the run ends.
#
# COMPARE names the harness (default bench/compare.sh). Any side-by-side harness that takes the
# server URL as its only argument can be given, e.g. COMPARE=path/to/other-harness.sh make bench.
# It finds users user0..user99 with passwords password0..password99 already in place.
# After it, against the same server, bench/live_fanout.py measures the live view: riders user0..user9
# (made public first) post samples, 100 viewers watch their event streams.
# The comparison runs once per worker count in BENCH_WORKERS (default "1 auto": one process, then as
# many as the machine has CPUs), each against a fresh server on a copy of the same fresh data folder;
# the fan-out runs against the last one.
# With the shared server stopped, on copies of the same users: bench/mirror_speed.py (workload `mirror`:
# the cost of --mirror per acknowledged write and the mirror's throughput, against VictoriaMetrics) and
# bench/shard_speed.py (workload `shards`: live writes through HAProxy to one and to two shards).
# Last, bench/activity_speed.py (workload `activities`, no InfluxDB needed) starts a Tracker of its own:
# importing a 12-hour ride (/write, tracker import, POST /api/import), opening its activity page (cold,
# warm, the page's first requests at once, a zoom), a live write to it.
# Environment: BENCH_PORT first port to try (18087); BENCH_WORKERS (see above); FANOUT_DUR seconds of
# the fan-out's writes (30); ACTIVITY_ROUNDS rounds of the activity measures (7); MIRROR_BACKLOG points
# the mirror's throughput is measured on (500000); WORKLOADS picks workloads, `fanout`, `mirror`,
# `shards` and `activities` among them (unset: all); DUR and the rest go on to the harness.
set -euo pipefail
cd "$(dirname "$0")/.."

tracker=.venv/bin/tracker
[ -x "$tracker" ] || { echo "error: $tracker not found; run 'make bench' (it builds .venv first)" >&2; exit 2; }
python=.venv/bin/python
USERS=100
FANOUT_RIDERS=10

# --- what runs: `fanout`, `mirror`, `shards` and `activities` in WORKLOADS are ours, the other names the harness's
run_fanout=1
run_mirror=1
run_shards=1
run_activities=1
compare_workloads=${WORKLOADS:-}
if [ -n "${WORKLOADS:-}" ]; then
  run_fanout=0
  run_mirror=0
  run_shards=0
  run_activities=0
  compare_workloads=
  for workload in $WORKLOADS; do
    case "$workload" in
      fanout) run_fanout=1 ;;
      mirror) run_mirror=1 ;;
      shards) run_shards=1 ;;
      activities) run_activities=1 ;;
      *) compare_workloads+="${compare_workloads:+ }$workload" ;;
    esac
  done
fi
run_activity_speed() {
  echo
  echo "activities: a 12-hour ride (43,200 points) imported, opened and written to, on a Tracker of its own"
  "$python" bench/activity_speed.py --rounds "${ACTIVITY_ROUNDS:-7}"
}
run_shared_server=1  # the comparison and the fan-out need it; mirror and shards start Trackers of their own
[ -n "${WORKLOADS:-}" ] && [ -z "$compare_workloads" ] && [ "$run_fanout" = 0 ] && run_shared_server=0
if [ "$run_shared_server" = 0 ] && [ "$run_mirror" = 0 ] && [ "$run_shards" = 0 ]; then
  run_activity_speed  # it needs neither the 100 users nor the shared server
  exit $?
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=${BENCH_PORT:-18087}
for _ in $(seq 50); do port_in_use "$port" || break; port=$((port + 1)); done
port_in_use "$port" && { echo "error: no free port from ${BENCH_PORT:-18087} on" >&2; exit 2; }
url=http://127.0.0.1:$port

work=$(mktemp -d)
server_pid=
child_pid=
# A measuring script runs in the background and is waited for, so that a TERM reaches the trap at once
# (bash runs traps only after a foreground child ends) and the cleanup can stop it (and it what it started).
run_child() {
  "$@" &
  child_pid=$!
  local child_status=0
  wait "$child_pid" || child_status=$?
  child_pid=
  return "$child_status"
}
cleanup() {
  if [ -n "$child_pid" ] && kill -0 "$child_pid" 2>/dev/null; then
    kill -TERM "$child_pid" 2>/dev/null || true
    wait "$child_pid" 2>/dev/null || true
  fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- users: the first alone (it creates the account file), the rest a few at a time -------------------
export TRACKER_DATA_DIR="$work/data"
add_user() { # N: userN with password passN, retried because parallel writers can briefly find the file locked
  local attempt
  for attempt in 1 2 3; do
    printf 'password%s' "$1" | "$tracker" user add "user$1" --password-stdin >/dev/null 2>"$TRACKER_DATA_DIR/.add$1.err" && return 0
    sleep "0.$attempt"
  done
  echo "error: could not add user$1:" >&2
  cat "$TRACKER_DATA_DIR/.add$1.err" >&2
  return 1
}
export -f add_user
export tracker
mkdir -p "$TRACKER_DATA_DIR"
echo "creating $USERS users in a fresh data folder"
add_user 0
seq 1 $((USERS - 1)) | xargs -P "$(nproc)" -I{} bash -c 'add_user {}'
rm -f "$TRACKER_DATA_DIR"/.add*.err
if [ "$run_fanout" = 1 ]; then
  # The fan-out's viewers watch without signing in, as anyone may watch a public profile.
  echo "making user0..user$((FANOUT_RIDERS - 1)) public for the live fan-out"
  for i in $(seq 0 $((FANOUT_RIDERS - 1))); do "$tracker" user public "user$i" on >/dev/null; done
fi

# --- the servers: one per worker count, each on its own copy of the prepared data folder --------------
cp -a "$TRACKER_DATA_DIR" "$work/prepared"
start_server() { # workers
  rm -rf "$TRACKER_DATA_DIR"
  cp -a "$work/prepared" "$TRACKER_DATA_DIR"
  echo "starting Tracker on $url with --workers $1"
  # The fan-out's 100 viewers all come from 127.0.0.1, which the per-address stream limit (32) is
  # there to stop; the bench lifts it.
  "$tracker" serve --host 127.0.0.1 --port "$port" --data-dir "$TRACKER_DATA_DIR" --log-level warning \
    --workers "$1" --max-streams-per-address 1000 >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 150); do
    [ "$(ping_code)" = 204 ] && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "error: Tracker exited:" >&2; tail -n 30 "$work/server.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "error: Tracker did not answer GET /ping with 204" >&2
  tail -n 30 "$work/server.log" >&2
  exit 1
}
stop_server() {
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}
ping_code() { curl -s -o /dev/null -w '%{http_code}' "$url/ping" || true; }

# --- the comparison, once per worker count ----------------------------------------------------------------
status=0
read -r -a worker_counts <<<"${BENCH_WORKERS:-1 auto}"
[ "$run_shared_server" = 1 ] || worker_counts=()
for workers in "${worker_counts[@]}"; do
  start_server "$workers"
  echo
  echo "=== Tracker with --workers $workers ==="
  report="$work/report-$workers"
  if [ -z "${WORKLOADS:-}" ]; then
    A_PID=$server_pid "${COMPARE:-bench/compare.sh}" "$url" | tee "$report" || status=$?
  elif [ -n "$compare_workloads" ]; then
    WORKLOADS=$compare_workloads A_PID=$server_pid "${COMPARE:-bench/compare.sh}" "$url" | tee "$report" || status=$?
  else
    echo "skipping the side-by-side comparison: WORKLOADS=\"$WORKLOADS\" names none of its workloads"
  fi
  [ "$workers" = "${worker_counts[-1]}" ] || stop_server
done

# --- the ratios of every worker count side by side (from the harness's "best of" lines) -------------------
if ((${#worker_counts[@]} > 1)) && [ -n "$compare_workloads$([ -z "${WORKLOADS:-}" ] && echo all)" ]; then
  echo
  echo "Tracker / InfluxDB, best of the rounds, by worker count"
  "$python" - "$work" "${worker_counts[@]}" <<'PY'
import re, sys
from pathlib import Path
work, counts = Path(sys.argv[1]), sys.argv[2:]
rows: dict[str, dict[str, str]] = {}
for count in counts:
    path = work / f"report-{count}"
    text = path.read_text() if path.exists() else ""
    summary = text.split("best of", 1)[1] if "best of" in text else ""
    for line in summary.splitlines()[1:]:
        m = re.match(r"(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            rows.setdefault(m.group(1), {})[count] = f"{m.group(4)}x"
        m = re.match(r"memory A: resident (\d+) MB", line)
        if m:
            rows.setdefault("memory (MB)", {})[count] = m.group(1)
        m = re.match(r"memory B: resident (\d+) MB", line)
        if m:
            rows.setdefault("memory (MB)", {})[count] += f" vs {m.group(1)}"
print(f"{'workload':<16}" + "".join(f"{'--workers ' + c:>22}" for c in counts))
for name, by_count in rows.items():
    print(f"{name:<16}" + "".join(f"{by_count.get(c, '-'):>22}" for c in counts))
PY
fi

# --- the live fan-out, against the last server ----------------------------------------------------------
if [ "$run_fanout" = 1 ] && [ "$run_shared_server" = 1 ]; then
  echo
  echo "live fan-out: $FANOUT_RIDERS riders, 100 viewers, ${FANOUT_DUR:-30} s, --workers ${worker_counts[-1]}"
  fanout_status=0
  "$python" bench/live_fanout.py "$url" --server-pid "$server_pid" --riders "$FANOUT_RIDERS" --viewers 100 \
    --rate 1 --duration "${FANOUT_DUR:-30}" || fanout_status=$?
  [ "$status" = 0 ] && status=$fanout_status
else
  echo "skipping the live fan-out: WORKLOADS=\"$WORKLOADS\" does not name fanout"
fi
[ -n "$server_pid" ] && stop_server  # the rest start servers of their own: the machine is theirs
# --- mirror: --mirror's cost per acknowledged write and its throughput, against VictoriaMetrics --------------
if [ "$run_mirror" = 1 ]; then
  echo
  echo "mirror: --mirror's cost on batch and live, and its throughput, against a local VictoriaMetrics"
  mirror_status=0
  run_child "$python" bench/mirror_speed.py --prepared "$work/prepared" --duration "${DUR:-10}" \
    --backlog "${MIRROR_BACKLOG:-500000}" || mirror_status=$?
  [ "$status" = 0 ] && status=$mirror_status
else
  echo "skipping the mirror measures: WORKLOADS=\"$WORKLOADS\" does not name mirror"
fi
# --- shards: live writes through HAProxy, one shard and two, against one instance ---------------------------
if [ "$run_shards" = 1 ]; then
  echo
  echo "shards: the live workload through HAProxy to one and to two Trackers, against one Tracker direct"
  shards_status=0
  run_child "$python" bench/shard_speed.py --prepared "$work/prepared" --duration "${DUR:-10}" || shards_status=$?
  [ "$status" = 0 ] && status=$shards_status
else
  echo "skipping the shard measures: WORKLOADS=\"$WORKLOADS\" does not name shards"
fi
# --- activities: a 12-hour ride at 1 Hz on a server of its own ------------------------------------------
if [ "$run_activities" = 1 ]; then
  activities_status=0
  run_activity_speed || activities_status=$?
  [ "$status" = 0 ] && status=$activities_status
else
  echo "skipping the activities measures: WORKLOADS=\"$WORKLOADS\" does not name activities"
fi
if [ -s "$work/server.log" ]; then
  echo "Tracker's log during the run (last 20 lines):"
  tail -n 20 "$work/server.log"
fi
exit "$status"
