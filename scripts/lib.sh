# Shared by scripts/test and scripts/demo: installs what the project needs on Debian 12 and
# starts/stops throwaway PostgreSQL clusters. Source it; do not run it.

set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_VERSION=15
PGRX_VERSION=0.18.1
# INFOR_PG_CONFIG points the scripts at another PostgreSQL 15 installation (a copy of Debian's,
# for example, so that two checkouts can install the extension without overwriting each other).
export PG_CONFIG=${INFOR_PG_CONFIG:-/usr/lib/postgresql/$PG_VERSION/bin/pg_config}
PG_BIN=$("$PG_CONFIG" --bindir 2>/dev/null || echo "/usr/lib/postgresql/$PG_VERSION/bin")
SYSTEM_PACKAGES=(
    "postgresql-$PG_VERSION" "postgresql-server-dev-$PG_VERSION" "postgresql-$PG_VERSION-cron"
    libclang-dev clang pkg-config rabbitmq-server openssl sudo
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The median of the numbers on standard input (of an even count, the mean of the middle two).
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# Runs a command as the postgres user (PostgreSQL refuses to run as root).
as_postgres() {
    if [[ $(id -un) == postgres ]]; then "$@"
    elif [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"
    else sudo -u postgres "$@"; fi
}

# Installs the Debian packages that are missing (PostgreSQL 15, pg_cron, clang, RabbitMQ).
install_system_packages() {
    local missing=()
    for pkg in "${SYSTEM_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
            echo "error: need root or sudo to install ${missing[*]}" >&2
            exit 1
        fi
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Installs cargo-pgrx (the version pinned with pgrx) and points it at PostgreSQL 15.
install_cargo_pgrx() {
    if [[ $(cargo pgrx --version 2>/dev/null) != "cargo-pgrx $PGRX_VERSION" ]]; then
        log "installing cargo-pgrx $PGRX_VERSION (once per machine, a few minutes)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    if ! grep -qs "^pg$PG_VERSION = \"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
        cargo pgrx init --pg$PG_VERSION "$PG_CONFIG" >/dev/null
    fi
}

# Where install_prometheus_tools unpacks Debian's prometheus and prometheus-postgres-exporter
# (their binaries in usr/bin/); tests/tests/alerts.rs reads the same variable, with the same
# default.
export INFOR_PROMETHEUS_TOOLS=${INFOR_PROMETHEUS_TOOLS:-$HOME/.cache/infor-comm/prometheus-tools}
PROMETHEUS_PACKAGES=(prometheus prometheus-postgres-exporter)

# Unpacks Debian 12's prometheus (prometheus, promtool) and prometheus-postgres-exporter into
# INFOR_PROMETHEUS_TOOLS, for the alert tests. They are downloaded (apt-get download) and
# unpacked (dpkg-deb -x), never installed: no service is started, no port taken, no system user
# made. Does nothing when the binaries are there.
install_prometheus_tools() {
    local dir=$INFOR_PROMETHEUS_TOOLS binary missing=0
    for binary in prometheus promtool prometheus-postgres-exporter; do
        [[ -x $dir/usr/bin/$binary ]] || missing=1
    done
    ((missing)) || return 0
    log "unpacking Debian's ${PROMETHEUS_PACKAGES[*]} into $dir (not installed, nothing started)"
    # apt-get download needs the package lists, which apt-get update (root) fetches.
    if ! apt-cache show "${PROMETHEUS_PACKAGES[@]}" >/dev/null 2>&1; then
        as_root apt-get update -qq
    fi
    local download deb sandbox=()
    mkdir -p "$dir"
    download=$(mktemp -d "$dir/.download.XXXXXX")
    # As root, apt would hand the download to its user _apt, which cannot write in a folder of
    # root's home: it downloads as root instead, and says so unless told to.
    [[ $(id -u) -ne 0 ]] || sandbox=(-o APT::Sandbox::User=root)
    (cd "$download" && apt-get download -qq "${sandbox[@]}" "${PROMETHEUS_PACKAGES[@]}" >/dev/null)
    for deb in "$download"/*.deb; do
        dpkg-deb -x "$deb" "$dir"
        basename "$deb" >>"$dir/packages.txt"
    done
    rm -rf "$download"
    for binary in prometheus promtool prometheus-postgres-exporter; do
        if [[ ! -x $dir/usr/bin/$binary ]]; then
            echo "error: $dir/usr/bin/$binary is missing after unpacking ${PROMETHEUS_PACKAGES[*]}" >&2
            exit 1
        fi
    done
}

# Everything both commands need.
setup() {
    install_system_packages
    install_cargo_pgrx
}

# Builds and installs the extension into PostgreSQL 15 (pass --release for an optimised build).
install_extension() {
    log "installing the infor_comm extension into PostgreSQL $PG_VERSION $*"
    local sudo_flag=()
    [[ $(id -u) -eq 0 ]] || sudo_flag=(--sudo)
    # One install at a time into PostgreSQL's directories (scripts/test-packages takes the same lock).
    exec {lock_fd}>"$EXTENSION_LOCK"
    flock -w 1800 "$lock_fd"
    (cd "$REPO_ROOT/pg_ext" && cargo pgrx install --pg-config "$PG_CONFIG" "${sudo_flag[@]}" "$@" >/dev/null)
    # cargo pgrx install copies the upgrade scripts (infor_comm--A--B.sql) but not the frozen
    # scripts of released versions (infor_comm--A.sql); without them CREATE EXTENSION … VERSION
    # 'A' cannot create an older version.
    local script extension_dir
    extension_dir="$("$PG_CONFIG" --sharedir)/extension"
    for script in "$REPO_ROOT"/pg_ext/sql/infor_comm--*.sql; do
        [[ $(basename "$script") == infor_comm--*--*.sql ]] && continue
        as_root install -m 0644 "$script" "$extension_dir/"
    done
    exec {lock_fd}>&-
}

# Taken while the extension is installed into PostgreSQL's directories, so that two scripts of
# this repository never install at the same moment.
EXTENSION_LOCK=$([[ -d /run/lock ]] && echo /run/lock || echo /tmp)/infor-comm-extension.lock

# start_cluster DIR PORT CRON_DATABASE: a new cluster in DIR on 127.0.0.1:PORT, pg_cron preloaded.
start_cluster() {
    local dir=$1 port=$2 cron_db=$3
    stop_cluster "$dir"
    as_root rm -rf "$dir"
    as_root mkdir -p "$dir"
    as_root chown postgres:postgres "$dir"
    as_postgres "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C.UTF-8 >/dev/null
    as_postgres tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
shared_preload_libraries = 'pg_cron'
cron.database_name = '$cron_db'
CONF
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
}

# stop_cluster DIR: stops the cluster started by start_cluster, if it runs.
stop_cluster() {
    local dir=$1
    if [[ -f $dir/data/postmaster.pid ]]; then
        as_postgres "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
}

# start_rabbitmq DIR PORT: a RabbitMQ node of its own in DIR, listening on 127.0.0.1:PORT.
# A node that does not start is reported with the end of its output and logs (the callers may
# remove DIR), stopped, and started once more: on a slow machine a first start has been seen to
# fail where the next one worked.
start_rabbitmq() {
    local dir=$1 port=$2 attempt
    for attempt in 1 2; do
        start_rabbitmq_once "$dir" "$port" && return 0
        echo "error: RabbitMQ did not start on 127.0.0.1:$port (attempt $attempt of 2); the end of $dir/server.out and of its logs:" >&2
        tail -n 40 "$dir/server.out" "$dir"/log/*.log >&2 2>/dev/null || true
        stop_rabbitmq "$dir"
        # A node that never answered cannot be stopped by rabbitmqctl: end its processes (the
        # server script and the Erlang VM it started).
        if [[ -f $dir/server.pid ]]; then
            pkill -KILL -P "$(cat "$dir/server.pid")" 2>/dev/null || true
            kill -KILL "$(cat "$dir/server.pid")" 2>/dev/null || true
        fi
        sleep 2
    done
    return 1
}

# start_rabbitmq_once DIR PORT: one try of start_rabbitmq; fails when the node has not answered
# after 90 polls (each waits up to 5 s for it, then 1 s more: 90 s to 9 minutes).
start_rabbitmq_once() {
    local dir=$1 port=$2
    stop_rabbitmq "$dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "[]." > "$dir/enabled_plugins"
    RABBIT_NODE="infor_demo_$port@localhost"
    (
        cd "$dir"
        export HOME=$dir RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        export RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$((port + 1))
        export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
        export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins RABBITMQ_CONFIG_FILE=$dir/rabbitmq
        export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config RABBITMQ_PID_FILE=$dir/pid
        export ERL_EPMD_ADDRESS=127.0.0.1
        nohup /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir/server.out" 2>&1 &
        echo $! >"$dir/server.pid"
    )
    echo "$RABBIT_NODE" > "$dir/node"
    for _ in $(seq 1 90); do
        HOME=$dir /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBIT_NODE" await_startup --timeout 5 >/dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}

# stop_rabbitmq DIR: stops the node started by start_rabbitmq, if it runs.
stop_rabbitmq() {
    local dir=$1
    [[ -f $dir/node ]] || return 0
    HOME=$dir /usr/lib/rabbitmq/bin/rabbitmqctl -n "$(cat "$dir/node")" stop >/dev/null 2>&1 || true
    rm -f "$dir/node"
}

# Released versions of the extension and the commits they were released from (docs/upgrading.md).
declare -A RELEASES=([0.1.0]=3ccf94a [0.2.0]=03b7b00)

# install_release VERSION WORKDIR [--release]: builds a released version's library from its commit (a git
# worktree in WORKDIR) and installs it with its frozen script. Checks that the frozen script
# pg_ext/sql/infor_comm--VERSION.sql holds exactly what that commit generates (released scripts
# are never edited). The caller removes the worktree (git worktree remove --force WORKDIR).
install_release() {
    local version=$1 tree=$2 commit=${RELEASES[$1]}
    shift 2
    log "building infor_comm $version from commit $commit $*"
    if ! git -C "$REPO_ROOT" cat-file -e "$commit^{commit}" 2>/dev/null; then
        echo "error: commit $commit (infor_comm $version) is not in this clone's history; a shallow clone cannot run the upgrade test (git fetch --unshallow)" >&2
        return 1
    fi
    git -C "$REPO_ROOT" worktree add --detach "$tree" "$commit" >/dev/null
    local sudo_flag=()
    [[ $(id -u) -eq 0 ]] || sudo_flag=(--sudo)
    # A target directory of its own: sharing this tree's would leave the released library
    # where cargo pgrx install of this tree picks it up (target/debug/libinfor_comm.so).
    # A released tree is never edited and never debugged here: it is built without an
    # incremental cache and without debug info (its own Cargo.toml asks for full debug info:
    # 748 MB of target/released against 461 MB).
    exec {lock_fd}>"$EXTENSION_LOCK"
    flock -w 1800 "$lock_fd"
    (cd "$tree/pg_ext" && CARGO_TARGET_DIR=$REPO_ROOT/target/released CARGO_INCREMENTAL=0 \
        CARGO_PROFILE_DEV_DEBUG=false cargo pgrx install --pg-config "$PG_CONFIG" "${sudo_flag[@]}" "$@" >/dev/null)
    exec {lock_fd}>&-
    # pgrx orders the script's blocks differently from one run to the next, so the blocks are
    # compared as a sorted list: the same blocks, each byte for byte.
    local generated frozen=$REPO_ROOT/pg_ext/sql/infor_comm--$version.sql
    generated="$("$PG_CONFIG" --sharedir)/extension/infor_comm--$version.sql"
    if ! cmp -s <(script_blocks "$generated") <(script_blocks "$frozen"); then
        echo "error: $frozen differs from what commit $commit generates; released scripts are never edited" >&2
        return 1
    fi
    as_root install -m 0644 "$frozen" "$generated"
}

# Prints the blocks of a script generated by pgrx, one line each, sorted.
script_blocks() {
    awk 'BEGIN { RS = "/[*] <begin connected objects> [*]/" } { gsub(/\n/, "\001"); print }' "$1" | LC_ALL=C sort
}
