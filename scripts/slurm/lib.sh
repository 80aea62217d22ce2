# shellcheck shell=bash disable=SC2034 # (the variables are used by the scripts sourcing this)
# Shared settings and helpers of the flow SLURM dev-cluster scripts. Sourced, not run; the
# scripts that source it have already set `set -euo pipefail`.

# ---- settings (FLOW_SLURM_STATE_DIR may be overridden; everything else derives from it) ----
FLOW_SLURM_STATE_DIR=${FLOW_SLURM_STATE_DIR:-/var/lib/flow-slurm}
S=$FLOW_SLURM_STATE_DIR

FLOW_SLURM_CLUSTER=flowdev
FLOW_SLURM_PARTITION=GPUQ
FLOW_SLURM_URGENT_PARTITION=GPUQ_URGENT  # higher PriorityTier: preempts (requeues) GPUQ jobs
FLOW_SLURM_CRED_EXPIRE=15         # s; a requeued job may start again after this + 1 s
FLOW_SLURM_ACCOUNT=flowtest       # default account of the users
FLOW_SLURM_ACCOUNT2=flowother     # a second valid account
FLOW_SLURM_GPU_TYPE=a100
FLOW_SLURM_GPUS=4
FLOW_SLURM_NODE_CPUS=16
FLOW_SLURM_NODE_MEMORY=131072     # MB
FLOW_SLURM_MAX_ARRAY_SIZE=1001
FLOW_SLURM_NODE=$(hostname -s)

ETC_DIR=$S/etc
SLURM_CONF_FILE=$ETC_DIR/slurm.conf
GRES_CONF_FILE=$ETC_DIR/gres.conf
SLURMDBD_CONF_FILE=$ETC_DIR/slurmdbd.conf
RUN_DIR=$S/run                    # slurm-owned: pid files of slurmdbd, slurmctld, slurmd
MUNGE_DIR=$S/munge                # munge-owned: munged's pid file
MYSQL_DIR=$S/mysql                # mysql-owned: socket, pid file; data/ is the datadir
MYSQL_DATA_DIR=$MYSQL_DIR/data
MYSQL_SOCKET=$MYSQL_DIR/mysqld.sock
LOG_DIR=$S/log
SPOOL_DIR=$S/spool
DEV_DIR=$S/dev                    # fake GPU character devices nvidia0..N-1 (c 195 N)
MAIL_PROG=$S/bin/mail
FLOW_SLURM_MAIL_LOG=$S/mail.log
DB_PASS_FILE=$S/db.pass
LOCK_FILE=$S/lock
MUNGE_SOCKET=/run/munge/munge.socket.2   # munge's default: slurm's auth/munge uses it
SYSTEM_SLURM_CONF=/etc/slurm/slurm.conf  # symlinked to ours so plain `sbatch` finds it

export SLURM_CONF=$SLURM_CONF_FILE
# The mysql client library used by slurmdbd connects to this socket (no TCP: --skip-networking).
export MYSQL_UNIX_PORT=$MYSQL_SOCKET

# Daemons in start order. stop runs them in reverse.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

pid_file_of() {
    case $1 in
        munged) echo "$MUNGE_DIR/munged.pid" ;;
        mariadbd) echo "$MYSQL_DIR/mariadbd.pid" ;;
        slurmdbd | slurmctld | slurmd) echo "$RUN_DIR/$1.pid" ;;
        *) return 1 ;;
    esac
}

log_file_of() { echo "$LOG_DIR/$1.log"; }

say() { printf 'flow-slurm: %s\n' "$*"; }
warn() { printf 'flow-slurm: %s\n' "$*" >&2; }

# Whether PID is a live (not zombie, not dead) process whose name is COMM. PID 1 here reaps
# late, so `kill -0` succeeds on zombies; and stale pid files survive reboots (no tmpfs /run).
proc_alive() {
    local pid=$1 comm=$2 stat state name
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    name=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $name == "$comm" ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    state=${stat##*) }
    state=${state%% *}
    [[ $state != Z && $state != X && $state != x ]]
}

# Prints the pid of daemon NAME if its pid file names a live process called NAME.
daemon_pid() {
    local name=$1 file pid
    file=$(pid_file_of "$name")
    [[ -r $file ]] || return 1
    read -r pid <"$file" 2>/dev/null || return 1
    proc_alive "$pid" "$name" || return 1
    echo "$pid"
}

daemon_running() { daemon_pid "$1" >/dev/null; }

# Milliseconds of wall-clock time, for bounded polling loops.
now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    echo $((10#$t / 1000))
}

# wait_for SECONDS COMMAND...: polls COMMAND (every 0.1 s, after 3 s every 0.5 s) until it
# succeeds; fails after SECONDS.
wait_for() {
    local limit=$1 start n=0
    shift
    start=$(now_ms)
    while true; do
        if "$@"; then return 0; fi
        if (($(now_ms) - start >= limit * 1000)); then return 1; fi
        n=$((n + 1))
        if ((n < 30)); then sleep 0.1; else sleep 0.5; fi
    done
}

tail_log() {
    local file=$1
    if [[ -s $file ]]; then
        warn "---- last lines of $file ----"
        tail -n 25 "$file" >&2 || true
        warn "---- end of $file ----"
    fi
}

# The state of this node as sinfo sees it (idle, mixed, allocated, down*, drained, ...).
node_state() {
    local out
    out=$(sinfo -h -N -n "$FLOW_SLURM_NODE" -o '%T' 2>/dev/null) || return 1
    [[ -n $out ]] || return 1
    echo "${out%%$'\n'*}"
}

node_usable() {
    local st
    st=$(node_state) || return 1
    case $st in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

node_idle() { [[ $(node_state) == idle ]]; }

# Whether PID is gone or a zombie (whatever its name).
proc_gone() {
    local pid=$1 stat state
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
    state=${stat##*) }
    state=${state%% *}
    [[ $state == Z || $state == X || $state == x ]]
}

# stop_daemon NAME SECONDS: TERM the daemon named by its pid file, wait up to SECONDS for it
# to exit, then KILL it. Never signals a process whose name is not NAME.
stop_daemon() {
    local name=$1 limit=$2 pid file
    file=$(pid_file_of "$name")
    if ! pid=$(daemon_pid "$name"); then
        # A stale pid file (the process is gone, or the pid now belongs to something else).
        rm -f "$file"
        return 0
    fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for "$limit" proc_gone "$pid"; then
        warn "$name (pid $pid) did not exit within ${limit}s of SIGTERM; sending SIGKILL"
        if proc_alive "$pid" "$name"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        if ! wait_for 10 proc_gone "$pid"; then
            warn "$name (pid $pid) is still alive after SIGKILL"
            return 1
        fi
    fi
    rm -f "$file"
}
