# shellcheck shell=bash
# Shared by the scripts behind `just up/down/scale/ps/logs`: where the local stack lives and
# how its processes are started, recognised and stopped. Source it; it defines no side effects
# beyond variables, PATH and functions.
#
# Bookkeeping: every process the local stack starts gets a name (nats, influxd, rng-1,
# hasher-3, ...), a log file .run/logs/NAME.log and a pid file .run/pids/NAME.pid holding
#   PID STARTTIME EXE [starting]
# STARTTIME is field 22 of /proc/PID/stat (clock ticks since boot) and EXE the absolute path we
# executed. A pid file only counts as "ours" while /proc/PID still shows that start time and
# that argv[0], so a reused pid is never signalled. "starting" marks the instant between fork
# and exec, when argv[0] is still the shell's or setsid's: the start time alone identifies it.

# shellcheck disable=SC2034  # the variables below are used by the scripts that source this
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# CHOCOMINER_RUN_DIR and the CHOCOMINER_*_PORT variables below let a second stack (the test,
# scripts/test-local-stack.sh) run beside the one `just up` started with the defaults.
RUN_DIR="${CHOCOMINER_RUN_DIR:-$ROOT/.run}"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
INFLUX_DIR="$RUN_DIR/influxdb"
ENV_FILE="$RUN_DIR/env"
# Passwords of the local stack, made on the first `up` (ensure_secrets). Directory 0700, files 0600.
SECRETS_DIR="$RUN_DIR/secrets"
# CHOCOMINER_BIN_DIR: run the binaries found there, as they are, instead of building the release
# ones (the local-stack test runs the dev build that `just test` has made anyway).
BIN_DIR="${CHOCOMINER_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
case "$BIN_DIR" in /*) ;; *) BIN_DIR="$ROOT/$BIN_DIR" ;; esac

# nats-server and just live in the project venv (scripts/install-deps.sh); influxd comes from apt.
PATH="$ROOT/.tools/venv/bin:$PATH"

STAGES=(rng hasher worker)       # in pipeline order: stopping goes this way too
INFRA=(nats influxd recorder)    # started before and stopped after the stages
UI=(webui)                       # the dashboard: started after and stopped before the stages
NATS_PORT="${CHOCOMINER_NATS_PORT:-4222}"
NATS_MONITOR_PORT="${CHOCOMINER_NATS_MONITOR_PORT:-8222}"
INFLUX_PORT="${CHOCOMINER_INFLUX_PORT:-8086}"
INFLUX_RPC_PORT="${CHOCOMINER_INFLUX_RPC_PORT:-8088}"
WEBUI_PORT="${CHOCOMINER_WEBUI_PORT:-8000}"
RECORDER_PORT="${CHOCOMINER_RECORDER_PORT:-8087}"
READY_TIMEOUT="${READY_TIMEOUT:-30}"   # seconds to wait for a server to answer
STOP_TIMEOUT="${STOP_TIMEOUT:-15}"     # seconds between SIGTERM and SIGKILL

say() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_stage() { [[ "${1:-}" =~ ^(rng|hasher|worker)$ ]]; }

# proc_stat PID: sets P_STATE and P_START (fields 3 and 22 of /proc/PID/stat); fails if the
# process is gone. Builtins only: no fork that a Ctrl-C could kill half-way. The command name
# in field 2 may hold spaces and ')', so cut after the last ')'.
proc_stat() {
  local stat fields
  P_STATE="" P_START=""
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  read -r -a fields <<<"${stat##*) }"
  P_STATE=${fields[0]} P_START=${fields[19]}
}

# True while NAME runs as the very process we started: same start time, same argv[0]. A zombie
# (exited, not yet reaped by its new parent) counts as gone. Sets PID, STARTTIME, EXE and
# PENDING from NAME's pid file (PID empty: there is none).
alive() {
  local argv0=""
  PID="" STARTTIME="" EXE="" PENDING=""
  read -r PID STARTTIME EXE PENDING 2>/dev/null <"$PID_DIR/$1.pid" || true
  [ -n "$PID" ] && proc_stat "$PID" && [ "$P_START" = "$STARTTIME" ] && [ "$P_STATE" != Z ] ||
    return 1
  [ -z "$PENDING" ] || return 0
  IFS= read -r -d "" argv0 2>/dev/null <"/proc/$PID/cmdline" || true
  [ "$argv0" = "$EXE" ]
}

# instances NAME...: those of NAME... that have a pid file, a stage standing for its instances,
# by number (rng-1, rng-2, ..., rng-10).
instances() {
  local n f
  for n in "$@"; do
    if is_stage "$n"; then
      for f in "$PID_DIR/$n"-*.pid; do
        f=${f##*/} f=${f%.pid}
        if [[ "${f#"$n"-}" =~ ^[0-9]+$ ]]; then say "$f"; fi
      done | sort -t- -k2,2n
    elif [ -f "$PID_DIR/$n.pid" ]; then say "$n"; fi
  done
}

# Names with a pid file: the servers, the dashboard, the stages in pipeline order, then any
# stray name.
tracked_names() {
  local f n
  instances "${INFRA[@]}" "${UI[@]}" "${STAGES[@]}"
  for f in "$PID_DIR"/*.pid; do
    n=${f##*/} n=${n%.pid}
    [[ ! -e $f || $n =~ ^(nats|influxd|recorder|webui|(rng|hasher|worker)-[0-9]+)$ ]] || say "$n"
  done
}

# forget_dead NAME...: drops the pid files of those no longer ours, saying so, and sets LIVE to
# the others.
forget_dead() {
  local n
  LIVE=()
  for n in "$@"; do
    if alive "$n"; then LIVE+=("$n"); elif [ -f "$PID_DIR/$n.pid" ]; then
      say "$n had exited (see $LOG_DIR/$n.log); forgetting it"
      rm -f "$PID_DIR/$n.pid"
    fi
  done
}

# log_tail NAME [MESSAGE]: the end of NAME's log on stderr; with MESSAGE, then dies with it.
log_tail() {
  local f="$LOG_DIR/$1.log"
  [ ! -s "$f" ] || { printf -- '--- last lines of %s ---\n' "$f"; tail -n 15 "$f"; echo ---; } >&2
  [ -z "${2:-}" ] || die "$2"
}

# Scripts that start processes trap INT/TERM into INTERRUPTED=1 rather than dying on the spot,
# so a Ctrl-C never lands between starting a process and recording it; they call this at
# points where stopping is safe.
checkpoint() { [ "${INTERRUPTED:-0}" = 0 ] || { say "interrupted" >&2; exit 130; }; }

# spawn NAME [VAR=VALUE ...] -- /abs/path/to/exe ARGS...: starts EXE in a session of its own
# (setsid: no controlling terminal, no SIGINT from the shell's Ctrl-C), SIGHUP ignored (nohup),
# stdin /dev/null, output to .run/logs/NAME.log, and records its pid file. setsid forks only
# when the caller leads a process group, which a script's background job never does, and
# setsid, nohup and env each exec the next: $! is EXE's pid, with the start time of the fork.
spawn() {
  local name=$1 vars=() pid exe argv0 deadline=$((SECONDS + 5))
  shift
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  exe=$1
  [[ "$exe" == /* ]] || die "spawn: $exe must be an absolute path"
  [ -x "$exe" ] || die "$exe is missing or not executable"
  checkpoint
  mkdir -p "$LOG_DIR" "$PID_DIR"
  setsid nohup env "${vars[@]}" "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  # Builtins only from here to the pid file, so nothing can interrupt the bookkeeping.
  pid=$!
  proc_stat "$pid" || log_tail "$name" "$name exited at once"
  printf '%s %s %s starting\n' "$pid" "$P_START" "$exe" >"$PID_DIR/$name.pid"
  # Wait for the exec chain to reach EXE; from then on argv[0] identifies it too.
  until IFS= read -r -d "" argv0 2>/dev/null <"/proc/$pid/cmdline" && [ "$argv0" = "$exe" ]; do
    alive "$name" || log_tail "$name" "$name exited at once (see $LOG_DIR/$name.log)"
    [ "$SECONDS" -lt "$deadline" ] || die "$name (pid $pid) did not start $exe"
    sleep 0.02
  done
  alive "$name" || log_tail "$name" "$name exited at once (see $LOG_DIR/$name.log)"
  printf '%s %s %s\n' "$pid" "$P_START" "$exe" >"$PID_DIR/$name.pid"
  checkpoint
}

# Sends SIGTERM to every live NAME given, waits up to STOP_TIMEOUT seconds for all of them,
# then SIGKILLs what is left. Reports each one and removes the pid files.
stop_names() {
  local n left=() still t t0=${EPOCHREALTIME/[.,]/} deadline=$((SECONDS + STOP_TIMEOUT))
  local told=$((SECONDS + 2)) # SECONDS counts whole seconds: at least one passes first
  for n in "$@"; do
    if alive "$n"; then
      kill -TERM "$PID" 2>/dev/null || true
      left+=("$n")
    elif [ -f "$PID_DIR/$n.pid" ]; then
      say "  $n was not running (stale pid file removed)"
      rm -f "$PID_DIR/$n.pid"
    fi
  done
  while [ "${#left[@]}" -gt 0 ]; do
    # A stage finishes what it holds before it exits (an rng waits for its batches in flight to
    # be acknowledged): say so once rather than sit silent.
    if [ "$told" -gt 0 ] && [ "$SECONDS" -ge "$told" ]; then
      say "  waiting for ${left[*]} to finish the batches in hand (up to ${STOP_TIMEOUT} s)"
      told=0
    fi
    still=()
    for n in "${left[@]}"; do
      if ! alive "$n"; then
        t=$(((${EPOCHREALTIME/[.,]/} - t0) / 100000)) # tenths of a second
        say "  stopped $n (pid $PID) in $((t / 10)).$((t % 10))s"
      elif [ "$SECONDS" -ge "$deadline" ]; then
        kill -KILL "$PID" 2>/dev/null || true
        # SIGKILL is not refused, but give the kernel a moment to release the ports.
        for _ in 1 2 3 4 5 6 7 8 9 10; do alive "$n" || break; sleep 0.1; done
        say "  killed $n (pid $PID): still running ${STOP_TIMEOUT}s after SIGTERM" \
          "(see $LOG_DIR/$n.log)"
      else still+=("$n"); continue; fi
      rm -f "$PID_DIR/$n.pid"
    done
    left=("${still[@]}")
    [ "${#left[@]}" -eq 0 ] || sleep 0.1
  done
}

# Starts instance number N of STAGE (the binary from build_release), as NATS user STAGE,
# writing its stats to the recorder as user `stages` (none when INFLUX_URL is empty: no stats).
spawn_stage() {
  local stage=$1 n=$2 auth stats=()
  mapfile -t auth < <(nats_client_env "$stage")
  if [ -n "${INFLUX_URL:-}" ]; then
    # -u: a password for InfluxDB itself in the environment is the recorder's, not theirs.
    stats=(-u INFLUX_PASSWORD "INFLUX_URL=http://127.0.0.1:$RECORDER_PORT" INFLUX_USER=stages
      "INFLUX_PASSWORD_FILE=$SECRETS_DIR/recorder-stages.password")
  fi
  spawn "$stage-$n" "${stats[@]}" "INSTANCE=$stage-$n" "${auth[@]}" -- "$BIN_DIR/$stage"
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every second until it succeeds and prints its
# output; dies with the command's last complaint after SECONDS (the container tests' poll).
wait_for() {
  local seconds=$1 what=$2 deadline=$((SECONDS + $1)) out
  shift 2
  until out="$("$@" 2>&1)"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what: not within ${seconds}s (last: ${out:-nothing})"
    sleep 1
  done
  printf '%s\n' "$out"
}

# wait_ready NAME FAILURE CHECK...: runs CHECK every 0.2 s until it succeeds; dies if NAME
# exits first, or with FAILURE after READY_TIMEOUT seconds.
wait_ready() {
  local name=$1 failure=$2 deadline=$((SECONDS + READY_TIMEOUT))
  shift 2
  until checkpoint && "$@"; do
    alive "$name" || log_tail "$name" "$name exited while starting"
    [ "$SECONDS" -lt "$deadline" ] || log_tail "$name" "$name $failure"
    sleep 0.2
  done
}

# wait_http NAME URL CODE: waits until a GET of URL answers CODE.
wait_http() { wait_ready "$1" "not ready after ${READY_TIMEOUT}s ($2)" http_is "$2" "$3"; }
http_is() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null)" = "$2" ]; }

# wait_subscribed NAME SUBJECT: waits until the local nats-server has a subscriber for SUBJECT
# (its monitoring /subsz), i.e. NAME has connected and joined its queue group.
wait_subscribed() { wait_ready "$1" "did not subscribe to $2 within ${READY_TIMEOUT}s" subs "$2"; }
subs() {
  local url="http://127.0.0.1:$NATS_MONITOR_PORT/subsz?subs=1&test=$1"
  [[ "$(curl -s --max-time 2 "$url" 2>/dev/null)" =~ \"total\":\ *[1-9] ]]
}

# The service settings in the environment (see docs/configuration.md). `up` saves them in
# ENV_FILE so that instances added later by `scale` run with the same ones.
SETTING_RE='^((NATS|INFLUX|RNG|HASHER|WORKER)_[A-Z_]+|SUBJECT_PREFIX|CHOCOMINER_PROFILE'
SETTING_RE+='|ACK_TIMEOUT_MS|DIFFICULTY|RUST_LOG)$'

# Loads the settings `up` saved; a variable set in the current environment wins.
# shellcheck disable=SC1090
load_settings() { [ ! -f "$ENV_FILE" ] || . "$ENV_FILE"; }

# Builds the release binaries into $BIN_DIR as `just build` does: the whole workspace at once
# (one package alone would resolve features differently and compile the dependencies again).
# QUIETLY=1 (`status`, `sub`, `ping`: run often) leaves out cargo's "Finished" line.
build_release() {
  [ -z "${CHOCOMINER_BIN_DIR:-}" ] || return 0
  if [ -z "${QUIETLY:-}" ]; then (cd "$ROOT" && cargo build --release --bins); return; fi
  local color=never
  [ -t 2 ] && color=always
  (cd "$ROOT" && cargo build --release --bins --color "$color" \
    2> >(grep -v --line-buffered 'Finished' >&2))
}

# influx_conf DIR HTTP_ADDR RPC_ADDR: an InfluxDB 1.x config from influxdb/influxdb.conf (the
# template the tests' influxd uses too), for `up` and the container test's influxdb stand-in.
influx_conf() {
  sed -e "s|@DIR@|$1|g" -e "s|@HTTP_ADDR@|$2|g" -e "s|@RPC_ADDR@|$3|g" \
    "$ROOT/influxdb/influxdb.conf"
}

# The NATS users (roles) of nats/nats-server.conf, lower case, one a line: read from its
# password variables $CHOCOMINER_NATS_<ROLE>_PASSWORD, so the config stays the one list.
nats_roles() {
  # shellcheck disable=SC2016  # a literal $ in the patterns
  grep -o '\$CHOCOMINER_NATS_[A-Z0-9_]*_PASSWORD' "$ROOT/nats/nats-server.conf" |
    sed -e 's/^\$CHOCOMINER_NATS_//' -e 's/_PASSWORD$//' | tr '[:upper:]' '[:lower:]' | sort -u
}

# Makes the passwords that do not exist yet, kept across `down`/`up` (a stage `scale` starts
# later still gets in; InfluxDB's users live on with its data):
# - nats-<role>.password: `n` and 32 hex digits. One nats-server would misread is refused (see
#   nats/nats-server.conf): it reads the variable's value as a config value, so digits alone
#   become a number, `1234-56` a date, a space or comma an error, and an empty one would let
#   that role in without a password.
# - influx-<role>.password: admin sets up the database and the users, writer may only write it
#   (the recorder: InfluxDB would let it delete too, so no stage holds it), reader only read it
#   (the dashboard, `just status`); recorder-stages.password: the stages' for the recorder.
ensure_secrets() {
  local role f password
  (umask 077 && mkdir -p "$SECRETS_DIR" && chmod 700 "$SECRETS_DIR")
  for role in $(nats_roles); do
    f="$SECRETS_DIR/nats-$role.password"
    [ -e "$f" ] || (umask 077 && echo "n$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$f")
    IFS= read -r password <"$f" || true
    [[ "$password" =~ ^[A-Za-z][A-Za-z0-9_-]{11,}$ ]] ||
      die "$f: a NATS password is 12 or more letters, digits, '-' or '_', starting with a letter;" \
        "delete the file and run \`just up\` again for a new one"
  done
  for f in recorder-stages influx-admin influx-writer influx-reader; do
    f="$SECRETS_DIR/$f.password"
    [ -e "$f" ] || (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$f")
    [ -n "$(tr -d '[:space:]' <"$f")" ] ||
      die "$f is empty: delete it and run \`just up\` again for a new one"
  done
}

# True when NATS_URL (unset: the default) is the local stack's nats-server.
nats_is_local() {
  [[ "${NATS_URL:-127.0.0.1:$NATS_PORT}" =~ ^(nats://)?(127\.0\.0\.1|localhost):$NATS_PORT$ ]]
}

# nats_client_env ROLE: NATS_USER=ROLE and NATS_PASSWORD_FILE=..., one a line, for a client of
# the local nats-server; none when NATS_URL points elsewhere (the local passwords are for the
# local server only) or the environment gives NATS credentials of its own (those win).
nats_client_env() {
  local own="${NATS_USER:-}${NATS_PASSWORD:-}${NATS_PASSWORD_FILE:-}${NATS_TOKEN:-}${NATS_CREDS:-}"
  if nats_is_local && [ -z "$own" ]; then
    printf 'NATS_USER=%s\nNATS_PASSWORD_FILE=%s\n' "$1" "$SECRETS_DIR/nats-$1.password"
  fi
}

# influx_client_env ROLE: INFLUX_USER=ROLE and INFLUX_PASSWORD_FILE=..., one a line, for a client
# of the local influxd; none when the environment gives InfluxDB credentials of its own.
influx_client_env() {
  if [ -z "${INFLUX_USER:-}${INFLUX_PASSWORD:-}${INFLUX_PASSWORD_FILE:-}" ]; then
    printf 'INFLUX_USER=%s\nINFLUX_PASSWORD_FILE=%s\n' "$1" "$SECRETS_DIR/influx-$1.password"
  fi
}

# influx_query URL ROLE STATEMENT: POSTs one InfluxQL statement as ROLE (or "" for no
# credentials); prints InfluxDB's answer and fails unless it is 200 without an error. The
# credentials and the statement (which may hold a password) go to curl through its standard
# input, never on a command line anyone on the machine may read.
influx_query() {
  local url=$1 role=$2 statement=$3 password body code
  body="$(
    {
      if [ -n "$role" ]; then
        IFS= read -r password <"$SECRETS_DIR/influx-$role.password"
        printf 'user = "%s:%s"\n' "$role" "$(curl_quote "$password")"
      fi
      printf 'data-urlencode = "q=%s"\n' "$(curl_quote "$statement")"
    } | curl -s -K - --max-time 10 -w '\n%{http_code}' -XPOST "$url/query" 2>&1
  )" || true
  code="${body##*$'\n'}" body="${body%$'\n'*}"
  printf '%s\n' "$body"
  [ "$code" = 200 ] && [[ "$body" != *'"error"'* ]]
}

# A value for a double-quoted string of a curl config file.
curl_quote() { local v=${1//\\/\\\\}; printf '%s' "${v//\"/\\\"}"; }
