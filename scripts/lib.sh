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
