#!/usr/bin/env bash
# A real single-host Grid Engine cluster for DSSR's `gridengine` connector tests (root, no systemd).
#
#   DSSR_CLUSTER_SCHEDULER=gridengine cluster.sh up|down|status|env|stop-sshd|start-sshd|stop-qmaster|start-qmaster
#
# cluster.sh runs this script when DSSR_CLUSTER_SCHEDULER=gridengine. Son of Grid Engine 8.1.9
# from Debian 12's packages (gridengine-master, -exec, -client) runs in a root of its own that
# mmdebstrap builds into DSSR_CLUSTER_ROOT (kept after `down`): sge_qmaster and sge_execd on
# ports of their own (6444, 6445), and an sshd (22030) that is the login node. The users are the
# Slurm clusters' (jarvice, kirby, mario, with the host's uids and, bind-mounted, homes); their
# keys, the users ID mapping, known_hosts and the scratch directory are in DSSR_CLUSTER_DIR.
set -euo pipefail

log() { printf '%s\n' "$*" >&2; }
die() { log "gridengine.sh: $*"; exit 1; }
# shellcheck source=tests/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=${DSSR_CLUSTER_DIR:-/var/lib/dssr-test-cluster-gridengine}
ROOT=${DSSR_CLUSTER_ROOT:-/var/cache/dssr-test-cluster/gridengine}
SSH_PORT=${DSSR_CLUSTER_SSH_PORT:-22030}
QMASTER_PORT=${DSSR_CLUSTER_QMASTER_PORT:-6444}
EXECD_PORT=$((QMASTER_PORT + 1))
SUITE=bookworm
#: In the root: Grid Engine, the login node's sshd, flock (util-linux), python3 for the tests' web
#: service of an interactive job.
ROOT_PACKAGES=(gridengine-master gridengine-exec gridengine-client openssh-server util-linux python3)
SGE_ROOT=/var/lib/gridengine
LOGIN_USERS=(jarvice kirby mario)
MAPPED_USERS=(kirby mario)
HOST=$(hostname)

RUN=$STATE/run
LOG=$STATE/log
KEYS=$STATE/keys
BIN=$STATE/bin
SCRATCH=$STATE/scratch
KNOWN_HOSTS=$STATE/known_hosts
ID_MAPPING=$STATE/users_id_mapping_configuration.yaml
SSHD_CONFIG=$STATE/sshd/sshd_config
SSH_PATH=$BIN:/usr/local/bin:/usr/bin:/bin
#: What every Grid Engine command and daemon needs to find this cell.
SGE_ENV=("SGE_ROOT=$SGE_ROOT" SGE_CELL=default "SGE_QMASTER_PORT=$QMASTER_PORT" "SGE_EXECD_PORT=$EXECD_PORT")
ROOT_ENV=(/usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${SGE_ENV[@]}")
IN=(chroot "$ROOT" "${ROOT_ENV[@]}")
# The daemons, by the root's executable (never by name: the host may run its own).
declare -A EXE=([sge_qmaster]=$ROOT/usr/lib/gridengine/sge_qmaster [sge_execd]=$ROOT/usr/lib/gridengine/sge_execd
                [sshd]=$ROOT/usr/sbin/sshd)
DAEMONS=(sge_qmaster sge_execd sshd)
MARKER=$ROOT/.dssr-test-cluster

inroot() { "${IN[@]}" "$@"; }

# ---------------------------------------------------------------- the root

# On the host: mmdebstrap builds the root, ssh checks the login from outside.
install_packages() {
    local missing=() p
    for p in mmdebstrap openssh-client; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == 'install ok installed' ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "  installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
        -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
}

# Built into $ROOT.new and moved into place. The postinst of gridengine-master sets the cell up
# for this host name (debconf), so the root is built again when the host name changes. Only
# `127.0.0.1 <host> localhost` resolves the host: with localhost first, qmaster calls itself
# localhost and refuses its own clients.
build_root() {
    if [[ -f $MARKER && $(cat "$MARKER") == *" for host $HOST" ]]; then
        return 0
    fi
    [[ ! -e $ROOT || -f $MARKER ]] || die "$ROOT is not a root made by gridengine.sh (no $MARKER)"
    local new=$ROOT.new out rc=0
    unmount_below "$ROOT"
    unmount_below "$new"
    rm -rf --one-file-system "$new"
    install -d -m 0755 "$(dirname "$ROOT")"
    out=$(mktemp)
    log "  mmdebstrap $SUITE with Grid Engine from $(debian_mirror) into $new"
    local preseed
    preseed=$(printf '%s\n' "gridengine-common shared/gridengineconfig boolean true" \
        "gridengine-common shared/gridenginecell string default" \
        "gridengine-common shared/gridenginemaster string $HOST")
    # shellcheck disable=SC2016 # $1 is mmdebstrap's, for the hooks
    mmdebstrap --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
        --essential-hook='printf "#!/bin/sh\nexit 101\n" >"$1/usr/sbin/policy-rc.d" && chmod 0755 "$1/usr/sbin/policy-rc.d"' \
        --essential-hook="printf '127.0.0.1 %s localhost\n' '$HOST' >\"\$1/etc/hosts\"" \
        --essential-hook="printf '%s\n' '$preseed' | chroot \"\$1\" debconf-set-selections" \
        --include="$(IFS=, && echo "${ROOT_PACKAGES[*]}")" \
        "$SUITE" "$new" "$(debian_mirror)" >"$out" 2>&1 || rc=$?
    if ((rc)); then
        tail -n 30 "$out" >&2
        rm -f "$out"
        unmount_below "$new"
        die "mmdebstrap $SUITE failed ($rc)"
    fi
    rm -f "$out"
    rm -f "$new"/etc/ssh/ssh_host_*
    rm -rf --one-file-system "$ROOT"
    # shellcheck disable=SC2016 # a dpkg-query format
    echo "Grid Engine $(chroot "$new" dpkg-query -W -f='${Version}' gridengine-master) from Debian $SUITE, built by DSSR's tests/cluster/gridengine.sh for host $HOST" >"$new/.dssr-test-cluster"
    mv "$new" "$ROOT"
}

# A root built before ROOT_PACKAGES grew gets what it lacks.
root_packages() {
    local missing=() p
    for p in "${ROOT_PACKAGES[@]}"; do
        # shellcheck disable=SC2016 # a dpkg-query format
        [[ $(inroot dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == 'install ok installed' ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "  installing ${missing[*]} in $ROOT"
    inroot apt-get -o Acquire::Check-Valid-Until=false update -qq
    inroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
    inroot apt-get clean
}

mount_root() {
    local d
    for d in /proc /sys /dev /dev/pts /home "$STATE"; do
        install -d -m 0755 "$ROOT$d"
        mountpoint -q "$ROOT$d" || mount --bind "$d" "$ROOT$d"
    done
}

ensure_users() {
    local u uid gid
    for u in "${LOGIN_USERS[@]}"; do
        id -u "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
        [[ $(getent shadow "$u" | cut -d: -f2) == '*' ]] || usermod -p '*' "$u"
        uid=$(id -u "$u") gid=$(id -g "$u")
        inroot getent group "$u" >/dev/null || inroot groupadd -g "$gid" "$u"
        inroot id -u "$u" >/dev/null 2>&1 || inroot useradd -M -d "/home/$u" -u "$uid" -g "$gid" -s /bin/bash "$u"
        [[ $(inroot id -u "$u"):$(inroot id -g "$u") == "$uid:$gid" ]] ||
            die "$u has uid:gid $(inroot id -u "$u"):$(inroot id -g "$u") in $ROOT, $uid:$gid on the host"
        [[ $(inroot getent shadow "$u" | cut -d: -f2) == '*' ]] || inroot usermod -p '*' "$u"
    done
}

make_dirs() {
    install -d -m 0755 "$STATE" "$RUN" "$LOG" "$KEYS" "$BIN" "$STATE/sshd"
    install -d -m 1777 "$SCRATCH"
}

make_keys() {
    local u
    [[ -f $STATE/sshd/ssh_host_ed25519_key ]] ||
        ssh-keygen -q -t ed25519 -N '' -C dssr-test-gridengine -f "$STATE/sshd/ssh_host_ed25519_key"
    for u in "${LOGIN_USERS[@]}"; do
        [[ -f $KEYS/$u ]] || ssh-keygen -q -t ed25519 -N '' -C "$u@dssr-test-gridengine" -f "$KEYS/$u"
    done
}

sshd_conf() {
    sshd_config "tests/cluster/gridengine.sh (DSSR test cluster, Grid Engine)" \
        "Non-interactive logins read no profile: the cell's settings come with every login." \
        "PATH=$SSH_PATH ${SGE_ENV[*]}"
}

# write_configs: 0 when sshd's config changed (a running sshd must be restarted)
write_configs() {
    local changed=1
    if ! cmp -s <(sshd_conf) "$SSHD_CONFIG"; then
        sshd_conf >"$SSHD_CONFIG"
        changed=0
    fi
    inroot install -d -m 0755 /run/sshd
    inroot /usr/sbin/sshd -t -f "$SSHD_CONFIG"
    (umask 077 && id_mapping >"$ID_MAPPING")
    echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$STATE/sshd/ssh_host_ed25519_key.pub")" >"$KNOWN_HOSTS"
    printf '%s\n' "127.0.0.1 $HOST localhost" >"$ROOT/etc/hosts"
    return $changed
}

# ---------------------------------------------------------------- daemons

running() { start-stop-daemon --status --pidfile "$RUN/$1.pid" --exec "${EXE[$1]}"; }
pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

# launch NAME ARGS...: NAME in the root, in the foreground of its own process (SGE_ND), pid file ours
launch() {
    local name=$1
    shift
    if running "$name"; then
        log "  $name already running (pid $(pid_of "$name"))"
        return 0
    fi
    start-stop-daemon --start --background --make-pidfile --pidfile "$RUN/$name.pid" \
        --output "$LOG/$name.log" --exec "${EXE[$name]}" \
        --startas /usr/sbin/chroot -- "$ROOT" "${ROOT_ENV[@]}" SGE_ND=true "${EXE[$name]#"$ROOT"}" "$@"
}

halt() {
    start-stop-daemon --stop --quiet --oknodo --retry TERM/20/KILL/5 --remove-pidfile \
        --pidfile "$RUN/$1.pid" --exec "${EXE[$1]}"
}

qmaster_up() { inroot qstat -g c; }

start_qmaster() {
    launch sge_qmaster
    wait_for sge_qmaster 60 qmaster_up
}

exec_host_up() { [[ $(inroot qstat -f -q all.q -xml) == *"<load_avg>"* ]]; }

start_execd() {
    # An execd killed without a goodbye leaves its pid file: the next one would refuse to start.
    rm -f "$ROOT/var/spool/gridengine/execd/$HOST/execd.pid"
    launch sge_execd
    wait_for "sge_execd to report load" 60 exec_host_up
}

start_sshd() {
    inroot install -d -m 0755 /run/sshd
    local sshd_exe=${EXE[sshd]#"$ROOT"}
    if running sshd; then
        log "  sshd already running (pid $(pid_of sshd))"
    else
        start-stop-daemon --start --background --make-pidfile --pidfile "$RUN/sshd.pid" \
            --output "$LOG/sshd.log" --exec "${EXE[sshd]}" \
            --startas /usr/sbin/chroot -- "$ROOT" "${ROOT_ENV[@]}" "$sshd_exe" -D -e -f "$SSHD_CONFIG"
    fi
    wait_for "ssh login" 30 ssh_as jarvice true
}

# ---------------------------------------------------------------- the cell's configuration

# quiet CMD...: CMD in the root, its output shown only when it fails
quiet() {
    local out
    out=$(inroot "$@" 2>&1) || { log "$out"; return 1; }
}

# Quick scheduling and accounting: a job is in qacct as soon as it ended. `qconf -M*` reads a
# file named after the object (global, all.q, ...).
configure() {
    local dir
    dir=$(mktemp -d)
    # qconf wraps long values with a backslash; join them (and drop what a wrapped line left behind).
    inroot qconf -sconf global | sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta' |
        awk '$1 !~ /=/' | sed -E \
        -e 's/^(reporting_params[[:space:]]+).*/\1accounting=true reporting=false flush_time=00:00:01 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00/' \
        -e 's/^(min_uid[[:space:]]+).*/\11000/' -e 's/^(min_gid[[:space:]]+).*/\11000/' \
        -e 's/^(load_report_time[[:space:]]+).*/\100:00:05/' \
        -e 's/^(execd_params[[:space:]]+).*/\1NOTIFY_KILL=TERM/' >"$dir/global"
    cp "$dir/global" "$ROOT/tmp/global" && quiet qconf -Mconf /tmp/global
    inroot qconf -ssconf | sed -E -e 's/^(schedule_interval[[:space:]]+).*/\10:0:1/' \
        -e 's/^(flush_submit_sec[[:space:]]+).*/\11/' -e 's/^(flush_finish_sec[[:space:]]+).*/\11/' \
        >"$ROOT/tmp/sched_conf"
    quiet qconf -Msconf /tmp/sched_conf
    inroot qconf -sh 2>/dev/null | grep -qxF "$HOST" || quiet qconf -ah "$HOST"
    inroot qconf -ss 2>/dev/null | grep -qxF "$HOST" || quiet qconf -as "$HOST"
    if ! inroot qconf -sel 2>/dev/null | grep -qxF "$HOST"; then
        printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' \
            "$HOST" >"$ROOT/tmp/$HOST" && quiet qconf -Ae "/tmp/$HOST"
    fi
    if ! inroot qconf -spl 2>/dev/null | grep -qxF smp; then
        # A parallel environment: a job's slots on one host (qsub -pe smp N).
        # shellcheck disable=SC2016 # Grid Engine's $pe_slots
        printf '%s\n' 'pe_name smp' 'slots 4' 'user_lists NONE' 'xuser_lists NONE' 'start_proc_args NONE' \
            'stop_proc_args NONE' 'allocation_rule $pe_slots' 'control_slaves FALSE' 'job_is_first_task TRUE' \
            'urgency_slots min' 'accounting_summary FALSE' 'qsort_args NONE' >"$ROOT/tmp/smp"
        quiet qconf -Ap /tmp/smp
    fi
    if ! inroot qconf -sql 2>/dev/null | grep -qxF all.q; then
        # The default queue, 4 slots on this host, no load alarm (a busy 2-core host trips the default).
        inroot qconf -sq | sed -E -e 's/^(qname[[:space:]]+).*/\1all.q/' -e "s/^(hostlist[[:space:]]+).*/\1$HOST/" \
            -e 's/^(slots[[:space:]]+).*/\14/' -e 's/^(load_thresholds[[:space:]]+).*/\1NONE/' \
            -e 's/^(notify[[:space:]]+).*/\100:00:05/' \
            -e 's/^(pe_list[[:space:]]+).*/\1smp/' -e 's/^(shell[[:space:]]+).*/\1\/bin\/bash/' -e 's/^(shell_start_mode[[:space:]]+).*/\1unix_behavior/' \
            >"$ROOT/tmp/all.q"
        quiet qconf -Aq /tmp/all.q
    fi
    # qdel of a job submitted with -notify: TERM (execd_params NOTIFY_KILL=TERM), KILL 5 s later,
    # as Slurm's KillWait does (execd reads execd_params when it starts).
    [[ $(inroot qconf -sq all.q | awk '$1 == "notify" {print $2}') == 00:00:05 ]] ||
        quiet qconf -mattr queue notify 00:00:05 all.q
    rm -rf "$dir" "$ROOT/tmp/global" "$ROOT/tmp/sched_conf" "$ROOT/tmp/$HOST" "$ROOT/tmp/smp" "$ROOT/tmp/all.q"
}

check_logins() {
    local out
    # shellcheck disable=SC2016 # expands on the far side
    out=$(ssh_as kirby 'echo "$PATH" && qstat -u "*" -xml >/dev/null && echo ok')
    [[ $out == "$SSH_PATH"$'\n'ok ]] || die "PATH or qstat over ssh is wrong: '$out'"
}

# ---------------------------------------------------------------- commands

up() {
    [[ $(id -u) == 0 ]] || die "up must run as root"
    local t0
    t0=$(usec)
    log "cluster up ($STATE, Grid Engine)"
    timed "packages" install_packages
    timed "root (Debian $SUITE, Grid Engine)" build_root
    local sshd_changed=1
    timed "users, keys, config" eval 'make_dirs; mount_root; root_packages; ensure_users; make_keys'
    if write_configs; then sshd_changed=0; fi
    if ((sshd_changed == 0)) && running sshd; then log "  config changed: stopping sshd" && stop_sshd; fi
    timed "sge_qmaster" start_qmaster
    timed "configuration (qconf)" configure
    timed "sge_execd (host reports load)" start_execd
    timed "sshd" start_sshd
    timed "checks (ssh PATH, qstat)" check_logins
    local us=$(( $(usec) - t0 ))
    log "cluster up in $((us / 1000000)).$((us / 100000 % 10))s: $(head -c 60 "$MARKER")"
    log "  ssh        jarvice|kirby|mario@127.0.0.1 -p $SSH_PORT (keys in $KEYS)"
    log "  qmaster    $HOST:$QMASTER_PORT, execd $EXECD_PORT, queue all.q"
    log "  env        eval \"\$(DSSR_CLUSTER_SCHEDULER=gridengine $0 env)\""
}

down() {
    [[ $(id -u) == 0 ]] || die "down must run as root"
    if running sge_qmaster; then
        inroot qdel -u '*' '*' >/dev/null 2>&1 || true
    fi
    stop_sshd
    halt sge_execd
    halt sge_qmaster
    [[ ! -d $ROOT ]] || unmount_below "$ROOT"
    rm -rf "$STATE"
    log "cluster down ($STATE removed)"
}

status() {
    daemons_status
    if running sge_qmaster; then inroot qstat -u '*'; fi
}

env_lines() {
    [[ -f $KEYS/jarvice ]] || die "no cluster in $STATE (run: DSSR_CLUSTER_SCHEDULER=gridengine $0 up)"
    local name value
    while read -r name value; do
        printf 'export %s=%q\n' "$name" "$value"
    done <<EOF
JARVICE_BAREMETAL_CONNECTOR gridengine
JARVICE_SLURM_CLUSTER_ADDR 127.0.0.1
JARVICE_SLURM_CLUSTER_PORT $SSH_PORT
JARVICE_SLURM_SSH_USER jarvice
JARVICE_SLURM_SSH_PKEY $(base64 -w0 "$KEYS/jarvice")
JARVICE_SLURM_SSH_KNOWN_HOSTS $KNOWN_HOSTS
JARVICE_SLURM_ID_MAPPING_FILE $ID_MAPPING
JARVICE_JOB_SCRATCH_DIR $SCRATCH
DSSR_CLUSTER_DIR $STATE
DSSR_CLUSTER_BIN $BIN
DSSR_CLUSTER_SCHEDULER gridengine
DSSR_CLUSTER_ROOT $ROOT
EOF
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    env) env_lines ;;
    stop-sshd) stop_sshd ;;
    start-sshd) start_sshd ;;
    stop-qmaster) halt sge_qmaster ;;
    start-qmaster) start_qmaster ;;
    *) die "usage: DSSR_CLUSTER_SCHEDULER=gridengine $0 up|down|status|env|stop-sshd|start-sshd|stop-qmaster|start-qmaster" ;;
esac
