#!/usr/bin/env bash
# Tests the local stack's process control for real, through the just recipes a developer types:
# a port taken, up, up again, ps, NATS authorization (each stage as its own user, anonymous
# refused, `just sub` as cli), scale hasher 2 then 3 (the settings `up` was given, one set on
# the command line winning), scale hasher 1 (newest first, gracefully), bad arguments, logs,
# down (nothing left running), down again, and an up that fails half-way (all or nothing).
# It runs a stack of its own (a temporary run directory, ports 24222/28222/28086/28088/28000),
# so it can run beside one `just up` started, on the dev build (it builds it first). Run by
# `just test`; fails, never skips, when a tool is missing. About 30 s once the binaries are built.
# shellcheck disable=SC2015  # `A && B || fail ...` is meant: fail unless both hold
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh # is_stage, port_open, STAGES, the settings' names (SETTING_RE), influx_query

say() { printf '==> %s\n' "$*"; }
passed=0
ok() { passed=$((passed + 1)); printf '  ok: %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

for tool in just cargo nats-server influxd curl ss python3 timeout; do
  command -v "$tool" >/dev/null || fail "$tool not found on PATH (scripts/install-deps.sh installs what the stack needs)"
done

# No setting of the developer's shell leaks in (NATS_URL would point the services elsewhere).
for v in $(compgen -e | grep -E "$SETTING_RE" || true); do unset "$v"; done
unset STOP_TIMEOUT READY_TIMEOUT LOG_LINES
export CHOCOMINER_PROFILE=demo HASHER_DELAY_MS=20 # the latter: a setting to find in scaled-up hashers
export CHOCOMINER_NATS_PORT=24222 CHOCOMINER_NATS_MONITOR_PORT=28222 CHOCOMINER_INFLUX_PORT=28086 \
  CHOCOMINER_INFLUX_RPC_PORT=28088 CHOCOMINER_WEBUI_PORT=28000 CHOCOMINER_RECORDER_PORT=28087
PORTS=(24222 28222 28086 28088 28000 28087)
CHOCOMINER_RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/chocominer-stack-test.XXXXXX")"
export CHOCOMINER_RUN_DIR
SECRETS_DIR="$CHOCOMINER_RUN_DIR/secrets" # lib.sh's, for influx_query, was set before the line above
LOGS="$CHOCOMINER_RUN_DIR/logs"

listener=""
finish() {
  local rc=$?
  [ -z "$listener" ] || kill "$listener" 2>/dev/null || true
  # Whatever happened, stop what this test started (a no-op when it is down already).
  timeout 90 just down >/dev/null 2>&1 || true
  if [ "$rc" = 0 ]; then rm -rf "$CHOCOMINER_RUN_DIR"; else printf 'logs kept in %s\n' "$LOGS" >&2; fi
  printf 'local-stack: %d passed, %d failed\n' "$passed" "$((rc != 0))"
  exit "$rc"
}
trap finish EXIT

# j SECONDS ARGS...: runs `just ARGS` for at most SECONDS, output in $out (and shown), exit code in $rc.
j() {
  local secs=$1
  shift
  rc=0
  out="$(timeout "$secs" just "$@" 2>&1)" || rc=$?
  printf '%s\n' "$out" | sed 's/^/    | /'
}
# pid_of NAME: NAME's pid in the last `just ps` output ($out), if it is listed as running.
pid_of() { awk -v n="$1" '$1 == n && $2 ~ /^[0-9]+$/ && /running/ { print $2 }' <<<"$out"; }
# has_env PID VAR=VALUE: the process was started with that variable.
has_env() { grep -qxF "$2" <<<"$(tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null)"; }
# before A B: A first appears before B in $out.
before() {
  local a b
  a="$(grep -nF -- "$1" <<<"$out" | head -n 1 | cut -d: -f1)"
  b="$(grep -nF -- "$2" <<<"$out" | head -n 1 | cut -d: -f1)"
  [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]
}
# runs PID: the process exists and has not exited (a zombie waiting for its reaper has).
runs() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}
one_error_line() { [ "$rc" != 0 ] && [ "$(wc -l <<<"$out")" = 1 ] && [[ "$out" == error:* ]]; }
nothing_left() {
  local pid port
  for pid in "$@"; do ! runs "$pid" || fail "pid $pid still runs after \`just down\`"; done
  for port in "${PORTS[@]}"; do ! port_open "$port" || fail "port $port is still taken after \`just down\`"; done
}

for port in "${PORTS[@]}"; do
  ! port_open "$port" || fail "port $port is taken: this test runs its stack on ${PORTS[*]}"
done

# The dev build: after `cargo test` only the binaries themselves are left to build, where the
# release build `just up` makes would compile everything again (minutes on 2 cores).
say "cargo build --bins (the dev build, run by \`just up\` through CHOCOMINER_BIN_DIR)"
cargo build --bins
export CHOCOMINER_BIN_DIR="${CARGO_TARGET_DIR:-target}/debug"
t0=$SECONDS

say "just up with port ${PORTS[4]} taken"
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)' "${PORTS[4]}" &
listener=$!
for _ in $(seq 50); do port_open "${PORTS[4]}" && break; sleep 0.1; done
j 60 up
[ "$rc" != 0 ] && [[ "$out" == *"port ${PORTS[4]} (dashboard (webui)) is taken by another program (python3, pid $listener)"* ]] ||
  fail "up did not refuse with the port and the program holding it"
kill "$listener"
wait "$listener" 2>/dev/null || true
listener=""
ok "up refuses a taken port and names who holds it"

say "just up"
j 120 up
[ "$rc" = 0 ] || fail "just up failed"
ok "up"
j 30 up
[ "$rc" != 0 ] && [[ "$out" == *"already up"* ]] || fail "a second up did not refuse"
ok "up refuses when the stack is up"

say "just ps"
j 30 ps
[ "$rc" = 0 ] || fail "just ps failed"
declare -A pid
for n in nats influxd recorder webui rng-1 hasher-1 worker-1; do
  pid[$n]="$(pid_of "$n")"
  [ -n "${pid[$n]}" ] && runs "${pid[$n]}" || fail "ps does not list $n with the pid of a live process"
done
has_env "${pid[hasher-1]}" INSTANCE=hasher-1 || fail "hasher-1 does not run with INSTANCE=hasher-1"
ok "ps lists nats, influxd, recorder, webui and one rng, hasher and worker, with their pids"

say "NATS authorization: a password per user, each stage as its own user, no one anonymous"
secrets="$CHOCOMINER_RUN_DIR/secrets"
[ "$(stat -c %a "$secrets")" = 700 ] || fail "$secrets is not mode 700"
for r in $(nats_roles); do
  [ "$(stat -c %a "$secrets/nats-$r.password")" = 600 ] || fail "$secrets/nats-$r.password is not mode 600"
done
for s in rng hasher worker; do
  has_env "${pid[$s-1]}" "NATS_USER=$s" && has_env "${pid[$s-1]}" "NATS_PASSWORD_FILE=$secrets/nats-$s.password" ||
    fail "$s-1 does not run as NATS user $s with its own password file"
  ! grep -q '^CHOCOMINER_NATS_[A-Z0-9_]*_PASSWORD=' <<<"$(tr '\0' '\n' <"/proc/${pid[$s-1]}/environ")" ||
    fail "$s-1 has the server's passwords"
done
! grep -qxF "$(cat "$secrets/nats-rng.password")" <<<"$(tr '\0' '\n' <"/proc/${pid[nats]}/cmdline")" ||
  fail "a password is on nats-server's command line"
# A client without credentials: greeted with auth_required, then refused.
# shellcheck disable=SC2016  # the inner script's $1 and $info are its own
reply="$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"; read -r info <&3; echo "$info"
  printf "CONNECT {\"verbose\":false}\r\nPING\r\n" >&3; read -r answer <&3; echo "$answer"' _ "${PORTS[0]}" || true)"
[[ "$reply" == *'"auth_required":true'* && "$reply" == *"Authorization Violation"* ]] ||
  fail "nats-server let an anonymous client in: $reply"
NATS_URL="nats://127.0.0.1:${PORTS[0]}" j 60 sub numbers --count 1
[ "$rc" = 0 ] && [[ "$out" == *"chocominer.numbers"* ]] || fail "just sub (as cli) saw no batch of rng's"
ok "passwords in $secrets (700/600), stages as their own users, anonymous refused, just sub as cli sees rng's batches"
say "InfluxDB checks credentials: writer for the recorder only, the stages through it, reader for the dashboard and status"
secrets="$SECRETS_DIR"
[ "$(stat -c %a "$secrets")" = 700 ] || fail "$secrets is not mode 700"
for role in admin writer reader stages; do
  f="$secrets/influx-$role.password"
  [ "$role" != stages ] || f="$secrets/recorder-stages.password"
  [ -s "$f" ] && [ "$(stat -c %a "$f")" = 600 ] || fail "$f is missing, empty or not mode 600"
  for n in "${!pid[@]}"; do
    ! grep -qF "$(cat "$f")" "/proc/${pid[$n]}/environ" || fail "$n has the $role password in its environment"
  done
  ! grep -rqF "$(cat "$f")" "$LOGS" || fail "the $role password is in a log"
done
for n in rng-1 hasher-1 worker-1; do
  has_env "${pid[$n]}" "INFLUX_URL=http://127.0.0.1:$CHOCOMINER_RECORDER_PORT" && has_env "${pid[$n]}" INFLUX_USER=stages &&
    has_env "${pid[$n]}" "INFLUX_PASSWORD_FILE=$secrets/recorder-stages.password" ||
    fail "$n does not write to the recorder as stages (INFLUX_URL, INFLUX_USER, INFLUX_PASSWORD_FILE)"
  ! grep -qF influx-writer "/proc/${pid[$n]}/environ" || fail "$n knows where InfluxDB's writer password is"
done
has_env "${pid[recorder]}" INFLUX_USER=writer && has_env "${pid[recorder]}" "INFLUX_PASSWORD_FILE=$secrets/influx-writer.password" ||
  fail "the recorder does not write as InfluxDB's writer"
has_env "${pid[webui]}" INFLUX_USER=reader || fail "the dashboard does not read as InfluxDB's reader"
anonymous="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -G "http://127.0.0.1:$CHOCOMINER_INFLUX_PORT/query" \
  --data-urlencode db=chocominer --data-urlencode 'q=SELECT count(hashes) FROM worker')"
[ "$anonymous" = 401 ] || fail "an anonymous query got HTTP $anonymous, not 401"
influx_url="http://127.0.0.1:$CHOCOMINER_INFLUX_PORT"
for _ in $(seq 60); do
  answer="$(influx_query "$influx_url" reader 'SELECT count(hashes) FROM chocominer.autogen.worker' || true)"
  [[ "$answer" == *'"values"'* ]] && break
  sleep 0.5
done
[[ "$answer" == *'"values"'* ]] || fail "the reader finds no worker points within 30 s: $answer"
! influx_query "$influx_url" writer 'SELECT count(hashes) FROM chocominer.autogen.worker' >/dev/null ||
  fail "the writer may read"
# The stages' password is no InfluxDB user's, and the recorder takes nothing but writes.
stages_password="$(cat "$secrets/recorder-stages.password")"
for url in "$influx_url" "http://127.0.0.1:$CHOCOMINER_RECORDER_PORT"; do
  code="$(printf 'user = "stages:%s"\n' "$stages_password" | curl -s -K - -o /dev/null -w '%{http_code}' --max-time 5 \
    -XPOST "$url/query" --data-urlencode db=chocominer --data-urlencode 'q=DROP SERIES FROM worker')"
  [[ "$code" =~ ^40[145]$ ]] || fail "DROP SERIES with the stages' password on $url: HTTP $code"
done
j 30 status --json
[ "$rc" = 0 ] && [[ "$out" == *'"worker"'* ]] || fail "just status did not read the stats as reader"
influx_dir_mode="$(stat -c %a "$CHOCOMINER_RUN_DIR/influxdb")"
[ "$influx_dir_mode" = 700 ] || fail "the InfluxDB directory is $influx_dir_mode, not 700: meta.db's password hashes are readable"
ok "InfluxDB: anonymous refused (401), data dir 0700, only the recorder writes as writer, the stages' password deletes nothing, reader reads (dashboard, status), passwords 0600 in a 0700 dir, in no environment or log"

say "just scale hasher 2 (HASHER_DELAY_MS=30 on the command line), then 3"
HASHER_DELAY_MS=30 j 60 scale hasher 2
[ "$rc" = 0 ] || fail "scale hasher 2 failed"
j 60 scale hasher 3
[ "$rc" = 0 ] || fail "scale hasher 3 failed"
j 30 ps
for n in hasher-1 hasher-2 hasher-3; do
  pid[$n]="$(pid_of "$n")"
  [ -n "${pid[$n]}" ] || fail "ps does not list $n after scale hasher 3"
done
[ "$(grep -c '^hasher-' <<<"$out")" = 3 ] || fail "not exactly 3 hashers after scale hasher 3"
[ "$(pid_of hasher-1)" = "${pid[hasher-1]}" ] || fail "hasher-1 was restarted by scale"
has_env "${pid[hasher-2]}" INSTANCE=hasher-2 && has_env "${pid[hasher-3]}" INSTANCE=hasher-3 ||
  fail "new hashers are not named hasher-2 and hasher-3 (INSTANCE)"
has_env "${pid[hasher-2]}" HASHER_DELAY_MS=30 || fail "hasher-2 did not get HASHER_DELAY_MS=30 from the scale command line"
has_env "${pid[hasher-3]}" HASHER_DELAY_MS=20 && has_env "${pid[hasher-3]}" CHOCOMINER_PROFILE=demo ||
  fail "hasher-3 did not get the settings \`up\` was given"
ok "scale hasher 3: exactly hasher-1..3, numbered on, with up's settings (the command line's winning)"

say "just scale hasher 1"
t=$SECONDS
j 60 scale hasher 1
[ "$rc" = 0 ] || fail "scale hasher 1 failed"
[[ "$out" != *SIGKILL* && "$out" != *killed* ]] || fail "a hasher had to be killed"
for n in hasher-2 hasher-3; do
  ! runs "${pid[$n]}" || fail "$n (pid ${pid[$n]}) still runs"
  grep -q 'SIGTERM received' "$LOGS/$n.log" || fail "$n did not stop on SIGTERM (its log)"
done
j 30 ps
[ "$(grep -c '^hasher-' <<<"$out")" = 1 ] && [ "$(pid_of hasher-1)" = "${pid[hasher-1]}" ] ||
  fail "hasher-1, the same process, is not the one hasher left"
ok "scale hasher 1: hasher-3 and hasher-2 stopped on SIGTERM ($((SECONDS - t)) s), hasher-1 untouched"

say "bad arguments"
j 10 scale hasher many
one_error_line || fail "scale hasher many: not one error line"
j 10 scale miner 2
one_error_line || fail "scale miner 2: not one error line"
LOG_LINES=x j 10 logs
one_error_line || fail "LOG_LINES=x just logs: not one error line"
ok "bad arguments give one error line each"

say "LOG_LINES=2 just logs hasher (stopped after 3 s: it follows)"
LOG_LINES=2 j 3 logs hasher
[ "$rc" = 124 ] || fail "logs did not keep following (exit code $rc)"
before "$LOGS/hasher-1.log" "$LOGS/hasher-2.log" && before "$LOGS/hasher-2.log" "$LOGS/hasher-3.log" ||
  fail "logs did not show hasher-1, hasher-2, hasher-3 in that order"
[[ "$out" != *"$LOGS/worker-1.log"* ]] || fail "logs hasher showed the worker's log"
ok "logs hasher: each hasher's log, in order, followed"

say "just down"
j 120 down
[ "$rc" = 0 ] || fail "just down failed"
before webui rng-1 && before rng-1 hasher-1 && before hasher-1 worker-1 && before worker-1 recorder &&
  before recorder nats && before nats influxd || fail "down did not stop webui, rng, hasher, worker, recorder, nats, influxd in that order"
nothing_left "${pid[@]}"
j 30 ps
[[ "$out" == *"not up"* ]] || fail "ps after down does not say the stack is down"
j 60 down
[ "$rc" = 0 ] && [[ "$out" == *"nothing to stop"* ]] || fail "a second down did not say there is nothing to stop"
ok "down stops everything in order and leaves nothing running; again, it has nothing to stop"

say "RNG_NUMBERS=bogus just up (rng cannot start: up must stop what it started)"
RNG_NUMBERS=bogus j 120 up
[ "$rc" != 0 ] && [[ "$out" == *rng-1* ]] || fail "up did not fail on rng-1"
nothing_left
j 30 ps
[[ "$out" == *"not up"* ]] || fail "something runs after a failed up"
ok "a failed up stops what it had started"

say "done in $((SECONDS - t0)) s after the build"
