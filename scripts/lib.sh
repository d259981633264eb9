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
# Passwords of the local stack, made on the first `up`: nats-<role>.password, the InfluxDB
# ones and the stages' one for the recorder beside them. The directory is 0700, each file 0600.
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
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

is_stage() { case "${1:-}" in rng | hasher | worker) return 0 ;; *) return 1 ;; esac; }

# --- /proc helpers ------------------------------------------------------------------------

# These use builtins only (no subshell that a Ctrl-C could kill half-way, and no forks).
# proc_stat PID: sets P_STATE and P_START (fields 3 and 22 of /proc/PID/stat); fails if the
# process is gone. The command name in field 2 may hold spaces and ')', so cut after the last ')'.
proc_stat() {
  local stat fields
  P_STATE="" P_START=""
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  read -r -a fields <<<"${stat##*) }"
  P_STATE=${fields[0]} P_START=${fields[19]}
}

# proc_argv0 PID: sets P_ARGV0 to the process's argv[0] (empty if gone).
proc_argv0() {
  P_ARGV0=""
  IFS= read -r -d "" P_ARGV0 2>/dev/null <"/proc/$1/cmdline" || true
}

# Seconds a process has been running, from its start time in clock ticks since boot.
proc_uptime() {
  local starttime=$1 up hz
  up="$(cut -d' ' -f1 /proc/uptime)"
  hz="$(getconf CLK_TCK)"
  awk -v up="$up" -v st="$starttime" -v hz="$hz" 'BEGIN { printf "%d\n", up - st / hz }'
}

human_duration() {
  local s=$1
  if ((s < 60)); then printf '%ds' "$s"
  elif ((s < 3600)); then printf '%dm%02ds' $((s / 60)) $((s % 60))
  else printf '%dh%02dm' $((s / 3600)) $((s % 3600 / 60)); fi
}

# --- pid files --------------------------------------------------------------------------

pidfile() { printf '%s/%s.pid\n' "$PID_DIR" "$1"; }

# Reads NAME's pid file into PID, STARTTIME, EXE, PENDING; fails if there is none.
read_pidfile() {
  PID="" STARTTIME="" EXE="" PENDING=""
  [ -f "$PID_DIR/$1.pid" ] || return 1
  read -r PID STARTTIME EXE PENDING <"$PID_DIR/$1.pid" || true
  [ -n "$PID" ]
}

# True while NAME runs as the very process we started: same start time, same argv[0]. A zombie
# (exited, not yet reaped by its new parent) counts as gone.
alive() {
  local PID STARTTIME EXE PENDING
  read_pidfile "$1" || return 1
  proc_stat "$PID" || return 1
  [ "$P_START" = "$STARTTIME" ] && [ "$P_STATE" != Z ] || return 1
  [ -n "$PENDING" ] && return 0
  proc_argv0 "$PID"
  [ "$P_ARGV0" = "$EXE" ]
}

# tracked_or_exit MESSAGE: sets TRACKED to the names tracked_names gives; when there are none,
# says MESSAGE and exits 0 (for `down` and `ps`, where an empty stack is not an error).
tracked_or_exit() {
  mapfile -t TRACKED < <(tracked_names)
  if [ "${#TRACKED[@]}" -eq 0 ]; then
    say "$1"
    exit 0
  fi
}

# Names with a pid file, in stop order: the dashboard, stages upstream first, then
# infrastructure, then any stray name. Instances of a stage are ordered by number.
tracked_names() {
  local stage n f
  for n in "${UI[@]}"; do
    if [ -f "$(pidfile "$n")" ]; then say "$n"; fi
  done
  for stage in "${STAGES[@]}"; do instances "$stage"; done
  for n in "${INFRA[@]}"; do
    if [ -f "$(pidfile "$n")" ]; then say "$n"; fi
  done
  for f in "$PID_DIR"/*.pid; do
    [ -e "$f" ] || continue
    n="$(basename "$f" .pid)"
    [[ "$n" =~ ^(nats|influxd|recorder|webui|(rng|hasher|worker)-[0-9]+)$ ]] || say "$n"
  done
}

# Instance names of STAGE that have a pid file, oldest number first (rng-1, rng-2, ...).
instances() {
  local f
  for f in "$PID_DIR/$1"-*.pid; do
    [ -e "$f" ] || continue
    f="$(basename "$f" .pid)"
    if [[ "${f#"$1"-}" =~ ^[0-9]+$ ]]; then say "$f"; fi
  done | sort -t- -k2,2n
}

# Drops pid files of processes that are no longer ours, saying so. Leaves live ones alone.
forget_dead() {
  local n
  for n in "$@"; do
    alive "$n" && continue
    [ -f "$(pidfile "$n")" ] || continue
    say "$n had exited (see $LOG_DIR/$n.log); forgetting it"
    rm -f "$(pidfile "$n")"
  done
}

# --- starting and stopping --------------------------------------------------------------

# Scripts that start processes trap INT/TERM into INTERRUPTED=1 rather than dying on the spot,
# so a Ctrl-C never lands between starting a process and recording it; they call this at
# points where stopping is safe.
checkpoint() { [ "${INTERRUPTED:-0}" = 0 ] || { say "interrupted" >&2; exit 130; }; }

# spawn NAME [VAR=VALUE ...] -- /abs/path/to/exe ARGS...
# Starts EXE in its own session (setsid: no controlling terminal, no SIGINT from the shell's
# Ctrl-C, survives the shell) with SIGHUP ignored (nohup), stdin from /dev/null and
# stdout+stderr to .run/logs/NAME.log, and records its pid file.
# setsid only forks when the caller leads a process group, which a non-interactive script's
# background job never does, and setsid, nohup and env each exec the next, so $! is the pid
# EXE ends up running as, with the start time it had from the fork.
spawn() {
  local name=$1 vars=() pid deadline exe pf
  shift
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  exe=$1 pf="$PID_DIR/$name.pid"
  [[ "$exe" == /* ]] || die "spawn: $exe must be an absolute path"
  [ -x "$exe" ] || die "$exe is missing or not executable"
  checkpoint
  mkdir -p "$LOG_DIR" "$PID_DIR"
  setsid nohup env "${vars[@]}" "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  # Builtins only from here to the pid file, so nothing can interrupt the bookkeeping.
  pid=$!
  if ! proc_stat "$pid"; then log_tail "$name"; die "$name exited at once"; fi
  printf '%s %s %s starting\n' "$pid" "$P_START" "$exe" >"$pf"
  # Wait for the exec chain to reach EXE; from then on argv[0] identifies it too.
  deadline=$((SECONDS + 5))
  while proc_argv0 "$pid" && [ "$P_ARGV0" != "$exe" ]; do
    alive "$name" || { log_tail "$name"; die "$name exited at once (see $LOG_DIR/$name.log)"; }
    [ "$SECONDS" -lt "$deadline" ] || die "$name (pid $pid) did not start $exe"
    sleep 0.02
  done
  alive "$name" || { log_tail "$name"; die "$name exited at once (see $LOG_DIR/$name.log)"; }
  printf '%s %s %s\n' "$pid" "$P_START" "$exe" >"$pf"
  checkpoint
}

# Sends SIGTERM to every live NAME given, waits up to STOP_TIMEOUT seconds for all of them,
# then SIGKILLs what is left. Reports each one and removes the pid files.
stop_names() {
  local n pid left=() still=() deadline told t0=$EPOCHREALTIME
  for n in "$@"; do
    if alive "$n"; then
      read_pidfile "$n"
      kill -TERM "$PID" 2>/dev/null || true
      left+=("$n")
    elif [ -f "$(pidfile "$n")" ]; then
      say "  $n was not running (stale pid file removed)"
      rm -f "$(pidfile "$n")"
    fi
  done
  [ "${#left[@]}" -gt 0 ] || return 0
  deadline=$((SECONDS + STOP_TIMEOUT))
  told=$((SECONDS + 2)) # SECONDS counts whole seconds: at least one passes first
  while :; do
    # A stage finishes what it holds before it exits (an rng waits for its batches in flight to
    # be acknowledged): say so once rather than sit silent.
    if [ "$told" -gt 0 ] && [ "$SECONDS" -ge "$told" ]; then
      say "  waiting for ${left[*]} to finish the batches in hand (up to ${STOP_TIMEOUT} s)"
      told=0
    fi
    still=()
    for n in "${left[@]}"; do
      if alive "$n"; then still+=("$n"); else
        read_pidfile "$n" && pid=$PID
        say "  stopped $n (pid $pid) in $(since "$t0")s"
        rm -f "$(pidfile "$n")"
      fi
    done
    left=("${still[@]}")
    [ "${#left[@]}" -gt 0 ] || return 0
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 0.1
  done
  for n in "${left[@]}"; do
    read_pidfile "$n"
    kill -KILL "$PID" 2>/dev/null || true
    # SIGKILL is not refused, but give the kernel a moment to release the ports.
    for _ in 1 2 3 4 5 6 7 8 9 10; do alive "$n" || break; sleep 0.1; done
    say "  killed $n (pid $PID): still running ${STOP_TIMEOUT}s after SIGTERM (see $LOG_DIR/$n.log)"
    rm -f "$(pidfile "$n")"
  done
}

# Seconds since an $EPOCHREALTIME value, with one decimal (its separator follows the locale).
since() { local now=$EPOCHREALTIME; awk -v a="${1/,/.}" -v b="${now/,/.}" 'BEGIN { printf "%.1f", b - a }'; }

# --- readiness --------------------------------------------------------------------------

# HTTP status code of a GET to URL, or 000 when nothing answers.
http_code() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every second until it succeeds and prints its
# output; dies with the command's last complaint after SECONDS (the container tests' poll).
wait_for() {
  local seconds=$1 what=$2 deadline out
  shift 2
  deadline=$(($(date +%s) + seconds))
  until out="$("$@" 2>&1)"; do
    if (($(date +%s) >= deadline)); then
      die "$what: not within ${seconds}s (last: ${out:-nothing})"
    fi
    sleep 1
  done
  printf '%s\n' "$out"
}

# wait_http NAME URL CODE: polls URL until it answers CODE, NAME dies or READY_TIMEOUT passes.
wait_http() {
  local name=$1 url=$2 want=$3 deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    checkpoint
    [ "$(http_code "$url")" = "$want" ] && return 0
    alive "$name" || { log_tail "$name"; die "$name exited while starting"; }
    [ "$SECONDS" -lt "$deadline" ] || { log_tail "$name"; die "$name not ready after ${READY_TIMEOUT}s ($url)"; }
    sleep 0.2
  done
}

# wait_subscribed NAME SUBJECT: waits until the local nats-server has a subscriber for SUBJECT
# (its monitoring /subsz), i.e. NAME has connected and joined its queue group.
wait_subscribed() {
  local name=$1 subject=$2 deadline=$((SECONDS + READY_TIMEOUT)) body
  while :; do
    checkpoint
    body="$(curl -s --max-time 2 "http://127.0.0.1:$NATS_MONITOR_PORT/subsz?subs=1&test=$subject" 2>/dev/null || true)"
    [[ "$body" =~ \"total\":\ *([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -gt 0 ] && return 0
    alive "$name" || { log_tail "$name"; die "$name exited while starting"; }
    [ "$SECONDS" -lt "$deadline" ] || { log_tail "$name"; die "$name did not subscribe to $subject within ${READY_TIMEOUT}s"; }
    sleep 0.2
  done
}

log_tail() {
  local f="$LOG_DIR/$1.log"
  [ -s "$f" ] || return 0
  printf -- '--- last lines of %s ---\n' "$f" >&2
  tail -n 15 "$f" >&2
  printf -- '---\n' >&2
}

# --- settings shared by `up` and `scale` ------------------------------------------------

# The service settings in the environment (see docs/configuration.md). `up` saves them so
# that instances added later by `scale` run with the same ones.
SETTING_RE='^(NATS_[A-Z_]+|INFLUX_[A-Z_]+|RNG_[A-Z_]+|HASHER_[A-Z_]+|WORKER_[A-Z_]+|SUBJECT_PREFIX|CHOCOMINER_PROFILE|ACK_TIMEOUT_MS|DIFFICULTY|RUST_LOG)$'

save_settings() {
  local v
  (
    umask 077  # NATS_PASSWORD / INFLUX_PASSWORD may be among them
    for v in $(compgen -e | grep -E "$SETTING_RE" || true); do
      # shellcheck disable=SC2016  # the ${...} is for the file, not for now
      printf '[ -n "${%s+x}" ] || export %s=%q\n' "$v" "$v" "${!v}"
    done >"$ENV_FILE"
  )
}

# Loads the settings `up` saved; a variable set in the current environment wins.
load_settings() {
  # shellcheck disable=SC1090
  [ -f "$ENV_FILE" ] && . "$ENV_FILE"
  return 0
}

# --- binaries ---------------------------------------------------------------------------

# Builds the release binaries into $BIN_DIR, the one way every script does (`up`, `status`,
# `sub`) and `just build` too: the whole workspace at once. Building one package (`cargo run
# -p ...`) would resolve features differently and compile the dependencies a second time.
build_release() { [ -n "${CHOCOMINER_BIN_DIR:-}" ] || (cd "$ROOT" && cargo build --release --bins); }

# build_release for the commands run often (`status`, `sub`, `ping`): what cargo compiles is
# shown, its "Finished" line is not (printed on every run, even with nothing to do).
build_release_quietly() {
  [ -n "${CHOCOMINER_BIN_DIR:-}" ] && return 0
  local color=never
  [ -t 2 ] && color=always
  (cd "$ROOT" && cargo build --release --bins --color "$color" 2> >(grep -v --line-buffered 'Finished' >&2))
}

# Prints an InfluxDB 1.x config for `influxd run -config` from influxdb/influxdb.conf (the
# template the tests' influxd uses too): data under DIR, HTTP API on HTTP_ADDR, the backup/RPC
# service on RPC_ADDR. Used by `up` and by the container test's influxdb stand-in.
influx_conf() {
  local dir=$1 http_addr=$2 rpc_addr=$3
  sed -e "s|@DIR@|$dir|g" -e "s|@HTTP_ADDR@|$http_addr|g" -e "s|@RPC_ADDR@|$rpc_addr|g" \
    "$ROOT/influxdb/influxdb.conf"
}

# --- NATS users and their passwords -------------------------------------------------------

# The NATS users (roles) of nats/nats-server.conf, lower case, one a line: read from its
# password variables $CHOCOMINER_NATS_<ROLE>_PASSWORD, so the config stays the one list.
nats_roles() {
  # shellcheck disable=SC2016  # a literal $ in the patterns
  grep -o '\$CHOCOMINER_NATS_[A-Z0-9_]*_PASSWORD' "$ROOT/nats/nats-server.conf" |
    sed -e 's/^\$CHOCOMINER_NATS_//' -e 's/_PASSWORD$//' | tr '[:upper:]' '[:lower:]' | sort -u
}

nats_password_file() { printf '%s/nats-%s.password\n' "$SECRETS_DIR" "$1"; }

# Makes a random password for every NATS role that has none yet (kept across `down`/`up`, so
# a stage started by `scale` later still gets in): `n` and 32 hex digits. Refuses one that
# nats-server would misread (see nats/nats-server.conf): it reads the variable's value as a
# config value, so digits alone become a number, `1234-56` a date, a space or comma an error,
# and an empty one would let that role in without a password.
ensure_nats_secrets() {
  local role f password
  (umask 077 && mkdir -p "$SECRETS_DIR")
  chmod 700 "$SECRETS_DIR"
  for role in $(nats_roles); do
    f="$(nats_password_file "$role")"
    if [ ! -e "$f" ]; then
      (umask 077 && printf 'n%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$f")
    fi
    IFS= read -r password <"$f" || true
    if ! [[ "$password" =~ ^[A-Za-z][A-Za-z0-9_-]{11,}$ ]]; then
      die "$f: a NATS password is 12 or more letters, digits, '-' or '_', starting with a letter; delete the file and run \`just up\` again for a new one"
    fi
  done
}

# Exports CHOCOMINER_NATS_<ROLE>_PASSWORD for every role, for nats-server's config to read:
# through the environment, never on a command line (which anyone on the machine may read).
# unexport_nats_secrets takes them away again once nats-server is started.
export_nats_secrets() {
  local role var
  for role in $(nats_roles); do
    var="CHOCOMINER_NATS_$(tr '[:lower:]' '[:upper:]' <<<"$role")_PASSWORD"
    IFS= read -r "${var?}" <"$(nats_password_file "$role")"
    export "${var?}"
  done
}
unexport_nats_secrets() {
  local v
  for v in $(compgen -e | grep -E '^CHOCOMINER_NATS_[A-Z0-9_]+_PASSWORD$' || true); do unset "$v"; done
}

# True when NATS_URL (unset: the default) is the local stack's nats-server.
nats_is_local() {
  case "${NATS_URL:-nats://127.0.0.1:$NATS_PORT}" in
    "nats://127.0.0.1:$NATS_PORT" | "nats://localhost:$NATS_PORT" | "127.0.0.1:$NATS_PORT" | "localhost:$NATS_PORT") return 0 ;;
    *) return 1 ;;
  esac
}

# nats_client_env ROLE: the VAR=VALUE settings a client of the local nats-server needs to get
# in as ROLE (NATS_USER and NATS_PASSWORD_FILE), one a line; none when NATS_URL points
# elsewhere (the local passwords are for the local server only) or the environment gives NATS
# credentials of its own (those win).
nats_client_env() {
  nats_is_local || return 0
  if [ -n "${NATS_USER:-}${NATS_PASSWORD:-}${NATS_PASSWORD_FILE:-}${NATS_TOKEN:-}${NATS_CREDS:-}" ]; then
    return 0
  fi
  printf 'NATS_USER=%s\nNATS_PASSWORD_FILE=%s\n' "$1" "$(nats_password_file "$1")"
}

# --- InfluxDB users and their passwords ---------------------------------------------------

# The users of the local influxd (influxdb/influxdb.conf has auth-enabled): admin sets up the
# database and the users, writer may only write it (the recorder: InfluxDB would let it delete
# too, so no stage holds it), reader only read it (the dashboard, `just status`).
INFLUX_ROLES=(admin writer reader)

influx_password_file() { printf '%s/influx-%s.password\n' "$SECRETS_DIR" "$1"; }
# The stages' password for the recorder (user `stages`): not one of InfluxDB's.
recorder_password_file() { printf '%s/recorder-stages.password\n' "$SECRETS_DIR"; }

# Makes a random password for every InfluxDB role, and for the stages, that has none yet. Kept
# across `down`/`up`: the users live in .run/influxdb with the data.
ensure_influx_secrets() {
  local role f files
  (umask 077 && mkdir -p "$SECRETS_DIR")
  chmod 700 "$SECRETS_DIR"
  files=("$(recorder_password_file)")
  for role in "${INFLUX_ROLES[@]}"; do files+=("$(influx_password_file "$role")"); done
  for f in "${files[@]}"; do
    if [ ! -e "$f" ]; then
      (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$f")
    fi
    [ -n "$(tr -d '[:space:]' <"$f")" ] || die "$f is empty: delete it and run \`just up\` again for a new one"
  done
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
        IFS= read -r password <"$(influx_password_file "$role")"
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

# setup_influx URL DB: the users, the database and the rights, on the local influxd, once it
# answers. Safe to repeat: the first `up` creates the administrator (InfluxDB lets the first
# one in without credentials while it has no user); later ones find it and set the same.
setup_influx() {
  local url=$1 db=$2 out role password qdb
  qdb="\"${db//\"/\\\"}\""
  if ! influx_query "$url" admin "SHOW USERS" >/dev/null; then
    IFS= read -r password <"$(influx_password_file admin)"
    out="$(influx_query "$url" "" "CREATE USER admin WITH PASSWORD '${password//\'/\\\'}' WITH ALL PRIVILEGES")" ||
      die "InfluxDB in $INFLUX_DIR has users but not the admin password in $(influx_password_file admin) ($out): put the right one there, or \`rm -rf $INFLUX_DIR\` (its stats are lost) and \`just up\` again"
  fi
  influx_query "$url" admin "CREATE DATABASE $qdb" >/dev/null || die "creating database $db failed"
  for role in writer reader; do
    IFS= read -r password <"$(influx_password_file "$role")"
    password="'${password//\'/\\\'}'"
    # CREATE USER refuses an existing user with another password: SET PASSWORD makes it ours.
    influx_query "$url" admin "CREATE USER $role WITH PASSWORD $password" >/dev/null ||
      influx_query "$url" admin "SET PASSWORD FOR $role = $password" >/dev/null ||
      die "InfluxDB user $role: cannot create it nor set its password"
  done
  influx_query "$url" admin "GRANT WRITE ON $qdb TO writer" >/dev/null || die "granting writer WRITE on $db failed"
  influx_query "$url" admin "GRANT READ ON $qdb TO reader" >/dev/null || die "granting reader READ on $db failed"
}

# influx_client_env ROLE: the VAR=VALUE settings a client of the local influxd needs to get in
# as ROLE (INFLUX_USER and INFLUX_PASSWORD_FILE), one a line; none when the environment gives
# InfluxDB credentials of its own (another server, other users: those win).
influx_client_env() {
  if [ -n "${INFLUX_USER:-}${INFLUX_PASSWORD:-}${INFLUX_PASSWORD_FILE:-}" ]; then
    return 0
  fi
  printf 'INFLUX_USER=%s\nINFLUX_PASSWORD_FILE=%s\n' "$1" "$(influx_password_file "$1")"
}

# Starts the recorder, the stages' write-only way to InfluxDB: it takes their points as user
# `stages` and writes them to INFLUX_URL as InfluxDB's writer (or as the environment's user).
spawn_recorder() {
  local influx
  mapfile -t influx < <(influx_client_env writer)
  spawn recorder "RECORDER_LISTEN=127.0.0.1:$RECORDER_PORT" RECORDER_USER=stages \
    "RECORDER_PASSWORD_FILE=$(recorder_password_file)" "${influx[@]}" -- "$BIN_DIR/recorder"
}

# Starts instance number N of STAGE (the binary from build_release), as NATS user STAGE,
# writing its stats to the recorder as user `stages` (none when INFLUX_URL is empty: no stats).
spawn_stage() {
  local stage=$1 n=$2 auth stats=()
  mapfile -t auth < <(nats_client_env "$stage")
  if [ -n "${INFLUX_URL:-}" ]; then
    # -u: a password for InfluxDB itself in the environment is the recorder's, not theirs.
    stats=(-u INFLUX_PASSWORD "INFLUX_URL=http://127.0.0.1:$RECORDER_PORT" INFLUX_USER=stages
      "INFLUX_PASSWORD_FILE=$(recorder_password_file)")
  fi
  spawn "$stage-$n" "${stats[@]}" "INSTANCE=$stage-$n" "${auth[@]}" -- "$BIN_DIR/$stage"
}
