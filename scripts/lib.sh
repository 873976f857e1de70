# Shared helpers for Gantry's scripts: idempotent installs from Debian, npm and rustup only, and the services
# the tests need, started on loopback. Sourced, not run.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=""
# apt_install PKG...: installs the Debian packages that are not installed yet.
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  log "Installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "Adding the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
  fi
}

ensure_node() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
}

# npm_install DIR: installs DIR's locked npm packages, again only when its package-lock.json changed.
npm_install() {
  local dir=$1 stamp lock_sum
  stamp="$dir/node_modules/.gantry-lock.sha256"
  lock_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
    return 0
  fi
  log "Installing npm packages in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$stamp"
}

# ensure_postgres: a PostgreSQL server reachable over its Unix socket, and a role for the current user that may
# create databases (each test makes its own). Exports GANTRY_TEST_POSTGRES_URL.
ensure_postgres() {
  command -v pg_lsclusters >/dev/null 2>&1 || apt_install postgresql
  local cluster version name
  cluster=$(pg_lsclusters --no-header | head -n 1)
  if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    log "Creating PostgreSQL $version cluster"
    as_root pg_createcluster "$version" main >/dev/null
    cluster=$(pg_lsclusters --no-header | head -n 1)
  fi
  read -r version name _ <<<"$cluster"
  if ! pg_lsclusters --no-header | awk '{print $4}' | head -n 1 | grep -q online; then
    log "Starting PostgreSQL $version/$name"
    as_root pg_ctlcluster "$version" "$name" start
  fi
  local user
  user=$(id -un)
  for _ in $(seq 1 50); do
    as_root su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 0.2
  done
  if [ "$(as_root su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = '$user'\"")" != "1" ]; then
    log "Creating PostgreSQL role $user (peer authentication, may create databases)"
    as_root su postgres -c "psql -qc 'CREATE ROLE \"$user\" LOGIN CREATEDB'"
  fi
  # Databases left by earlier runs.
  as_root su postgres -c "psql -qtAc \"SELECT datname FROM pg_database WHERE datname LIKE 'gantry_test_%'\"" |
    while read -r db; do as_root su postgres -c "dropdb --if-exists '$db'"; done
  export GANTRY_TEST_POSTGRES_URL="postgres://$user@localhost/postgres?host=/var/run/postgresql"
}

# ensure_redis: a Redis server for the session-store tests: the one GANTRY_TEST_REDIS_URL names if it answers,
# else our own on a spare loopback port (started once, reused by later runs). Exports GANTRY_TEST_REDIS_URL.
ensure_redis() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  if [ -n "${GANTRY_TEST_REDIS_URL:-}" ] && redis-cli -u "$GANTRY_TEST_REDIS_URL" ping 2>/dev/null | grep -q PONG; then
    return 0
  fi
  local state=/tmp/gantry-test-redis port
  mkdir -p "$state"
  if [ -f "$state/port" ] && redis-cli -p "$(cat "$state/port")" ping 2>/dev/null | grep -q PONG; then
    port=$(cat "$state/port")
  else
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log "Starting redis-server on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --daemonize yes \
      --dir "$state" --pidfile "$state/redis.pid" --logfile "$state/redis.log" >/dev/null
    for _ in $(seq 1 50); do
      redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break
      sleep 0.1
    done
    echo "$port" >"$state/port"
  fi
  export GANTRY_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
}

ensure_chromium() {
  apt_install chromium fonts-dejavu-core
}

# ensure_mosquitto: an MQTT broker for the ingestion tests: Debian's mosquitto on a spare loopback port (started
# once, reused by later runs), and mosquitto_pub. Exports GANTRY_TEST_MQTT_URL.
ensure_mosquitto() {
  command -v mosquitto >/dev/null 2>&1 || apt_install mosquitto
  command -v mosquitto_pub >/dev/null 2>&1 || apt_install mosquitto-clients
  local state=/tmp/gantry-test-mosquitto port
  mkdir -p "$state"
  if [ -f "$state/port" ] && mosquitto_pub -h 127.0.0.1 -p "$(cat "$state/port")" -t gantry/ping -m x 2>/dev/null; then
    port=$(cat "$state/port")
  else
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log "Starting mosquitto on 127.0.0.1:$port"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$state/mosquitto.conf"
    mosquitto -c "$state/mosquitto.conf" -d
    for _ in $(seq 1 50); do
      mosquitto_pub -h 127.0.0.1 -p "$port" -t gantry/ping -m x 2>/dev/null && break
      sleep 0.1
    done
    echo "$port" >"$state/port"
  fi
  export GANTRY_TEST_MQTT_URL="mqtt://127.0.0.1:$port"
}

# ensure_test_clients: the clients the tests drive: curl, the Python `influxdb` client and schemathesis (PyPI)
# in a virtualenv under the build directory. Exports GANTRY_TEST_PYTHON.
ensure_test_clients() {
  command -v curl >/dev/null 2>&1 || apt_install curl
  # The report tests render PDFs to PNG and extract their text.
  command -v pdftoppm >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1 || apt_install poppler-utils
  local venv="${CARGO_TARGET_DIR:-$PWD/target}/test-python"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
  if ! "$venv/bin/python" -c 'import influxdb' >/dev/null 2>&1; then
    log "Installing the Python influxdb client into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'influxdb==5.3.2'
  fi
  if [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null)" != "4.32.5" ]; then
    log "Installing schemathesis into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
  fi
  export GANTRY_TEST_PYTHON="$venv/bin/python"
}

# find_tdengine: prints the folder holding TDengine's bin/taosd and lib/ (../shared/tdengine, else $TDENGINE_HOME,
# else the parent of a taosd on PATH); prints nothing when there is none.
find_tdengine() {
  local candidate
  for candidate in "$PWD/../shared/tdengine" "${TDENGINE_HOME:-}" \
    "$(command -v taosd >/dev/null 2>&1 && dirname "$(dirname "$(command -v taosd)")")"; do
    if [ -n "$candidate" ] && [ -x "$candidate/bin/taosd" ]; then
      (cd "$candidate" && pwd)
      return 0
    fi
  done
}

# ensure_tdengine: a TDengine server for the store suite and the TDengine-backed API tests, on a spare loopback
# port (started once, reused by later runs). Exports GANTRY_TEST_TDENGINE_DSN, GANTRY_TEST_TDENGINE_HOME and
# TAOS_LIBRARY_PATH. Without a TDengine it fails, unless GANTRY_SKIP_TDENGINE=1 says to run without one (then the
# TDengine tests are left out of the run, loudly).
ensure_tdengine() {
  local home state=/tmp/gantry-test-tdengine port
  home=$(find_tdengine)
  if [ -z "$home" ]; then
    if [ "${GANTRY_SKIP_TDENGINE:-}" = 1 ]; then
      log "WARNING: no TDengine found and GANTRY_SKIP_TDENGINE=1: the TDengine tests are NOT run"
      return 0
    fi
    log "No TDengine found (looked in ../shared/tdengine, \$TDENGINE_HOME and PATH)."
    log "Install one, or set GANTRY_SKIP_TDENGINE=1 to run everything else without the TDengine tests."
    return 1
  fi
  [ -x "$home/setup" ] && "$home/setup"
  mkdir -p "$state"/{bin,lib,cfg,data,log,tmp}
  # Copies of the shared folder can lose their symlinks (libtaos.so holding the text "libtaos.so.1"), and the
  # shell finds its libraries through $ORIGIN/../lib: give it a folder of real links beside a copy of it.
  local file target
  for file in "$home"/lib/*; do
    target=$file
    while [ -f "$target" ] && [ ! -L "$target" ] && [ "$(stat -c %s "$target")" -lt 256 ] &&
      ! head -c 4 "$target" | grep -q ELF; do
      target="$home/lib/$(cat "$target")"
    done
    ln -sfn "$(readlink -f "$target")" "$state/lib/$(basename "$file")"
  done
  cmp -s "$home/bin/taos" "$state/bin/taos" || cp -f "$home/bin/taos" "$state/bin/taos"
  export TAOS_LIBRARY_PATH="$state/lib/libtaosnative.so"
  if [ -f "$state/port" ] && [ -f "$state/taosd.pid" ] && kill -0 "$(cat "$state/taosd.pid")" 2>/dev/null; then
    port=$(cat "$state/port")
  else
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log "Starting TDengine ($home) on 127.0.0.1:$port"
    rm -rf "${state:?}"/data/* "${state:?}"/log/*
    cat >"$state/cfg/taos.cfg" <<CFG
firstEp localhost:$port
fqdn localhost
serverPort $port
dataDir $state/data
logDir $state/log
tempDir $state/tmp
supportVnodes 256
charset UTF-8
telemetryReporting 0
crashReporting 0
monitor 0
audit 0
udf 0
enableCoreFile 0
minimalLogDirGB 0.1
minimalTmpDirGB 0.1
minimalDataDirGB 0.5
logKeepDays 1
CFG
    (
      export LD_LIBRARY_PATH="$state/lib" TAOS_BIND_IP=127.0.0.1 TAOS_BIND_IP6=::1
      setsid "$home/bin/taosd" -c "$state/cfg" >>"$state/log/taosd.stdout" 2>&1 </dev/null &
      echo $! >"$state/taosd.pid"
    )
    echo "$port" >"$state/port"
  fi
  local ready=""
  for _ in $(seq 1 120); do
    if ! kill -0 "$(cat "$state/taosd.pid")" 2>/dev/null; then
      log "taosd exited; its log is in $state/log"
      return 1
    fi
    if LD_LIBRARY_PATH="$state/lib" "$state/bin/taos" -c "$state/cfg" -s "show databases;" >/dev/null 2>&1; then
      ready=1
      break
    fi
    sleep 0.5
  done
  if [ -z "$ready" ]; then
    log "TDengine did not answer within 60 s; its log is in $state/log"
    return 1
  fi
  # Databases left by earlier runs: each name carries the process id of the test that made it
  # (`gantry_api_<pid>_<n>`, `gantry_test_<pid>_<n>_rollups`, …); those of live processes (another run) stay.
  local pid
  { LD_LIBRARY_PATH="$state/lib" "$state/bin/taos" -c "$state/cfg" -s "show databases;" 2>/dev/null |
    grep -o 'gantry_[a-z0-9_]*' || true; } | sort -u | while read -r db; do
      pid=$(echo "$db" | grep -oE '_[0-9]+' | head -1 | tr -d _)
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        continue
      fi
      LD_LIBRARY_PATH="$state/lib" "$state/bin/taos" -c "$state/cfg" -s "drop database if exists $db;" >/dev/null 2>&1
    done
  export GANTRY_TEST_TDENGINE_DSN="taos://localhost:$port"
  # The failover test starts servers of its own (a primary it kills and a secondary) from the same build.
  export GANTRY_TEST_TDENGINE_HOME="$home"
}
