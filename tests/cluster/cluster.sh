#!/usr/bin/env bash
# A real single-host Slurm cluster for DSSR's integration tests (Debian 12, root, no systemd).
#
#   cluster.sh up       install what is missing, start everything, wait until it answers
#   cluster.sh down     stop everything `up` started and remove the state directory
#   cluster.sh status   show what runs
#   cluster.sh env      print `export` lines that point DSSR at this cluster:
#                         eval "$(tests/cluster/cluster.sh env)"
#   cluster.sh stop-sshd|start-sshd|stop-slurmctld|start-slurmctld|stop-slurmrestd|start-slurmrestd
#   cluster.sh stop-slurmdbd|start-slurmdbd|stop-mariadb|start-mariadb
#
# State lives in DSSR_CLUSTER_DIR (default /var/lib/dssr-test-cluster). Outside it, `up` writes
# /etc/slurm/{slurm,slurmdbd}.conf and creates the users jarvice, kirby, mario and slurmrest;
# `down` leaves those in place.
set -euo pipefail

STATE=${DSSR_CLUSTER_DIR:-/var/lib/dssr-test-cluster}
SSH_PORT=${DSSR_CLUSTER_SSH_PORT:-22022}
REST_PORT=${DSSR_CLUSTER_REST_PORT:-6820}
DB_PORT=${DSSR_CLUSTER_DB_PORT:-13306}
CLUSTER=dssr
REST_PLUGINS=openapi/v0.0.38,openapi/dbv0.0.38
PACKAGES=(slurm-wlm slurmrestd slurm-wlm-jwt-plugin slurmdbd slurm-wlm-mysql-plugin munge
          openssh-server mariadb-server shellcheck)
LOGIN_USERS=(jarvice kirby mario)
MAPPED_USERS=(kirby mario)

RUN=$STATE/run          # pid files written by start-stop-daemon
LOG=$STATE/log          # stdout/stderr of every daemon
KEYS=$STATE/keys
BIN=$STATE/bin
SCRATCH=$STATE/scratch
JWT_KEY=$STATE/jwt_hs256.key
KNOWN_HOSTS=$STATE/known_hosts
ID_MAPPING=$STATE/users_id_mapping_configuration.yaml
SSHD_CONFIG=$STATE/sshd/sshd_config
DB_SOCKET=$STATE/mysql/mysqld.sock
SSH_PATH=$BIN:/usr/local/bin:/usr/bin:/bin

# name -> executable, in start order
declare -A EXE=([munged]=/usr/sbin/munged [mariadbd]=/usr/sbin/mariadbd
                [slurmdbd]=/usr/sbin/slurmdbd [slurmctld]=/usr/sbin/slurmctld
                [slurmd]=/usr/sbin/slurmd [slurmrestd]=/usr/sbin/slurmrestd [sshd]=/usr/sbin/sshd)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd slurmrestd sshd)

log() { printf '%s\n' "$*" >&2; }
die() { log "cluster.sh: $*"; exit 1; }
usec() { echo "${EPOCHREALTIME//[.,]/}"; }

# timed LABEL CMD...: run CMD and print how long it took
timed() {
    local label=$1 t0
    t0=$(usec)
    shift
    "$@"
    local us=$(( $(usec) - t0 ))
    printf '  %-34s %3d.%ds\n' "$label" $((us / 1000000)) $((us / 100000 % 10)) >&2
}

# wait_for WHAT SECONDS CMD...: poll CMD until it succeeds
wait_for() {
    local what=$1 deadline=$((SECONDS + $2))
    shift 2
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { log "cluster.sh: timed out waiting for $what (logs: $LOG)"; return 1; }
        sleep 0.2
    done
}

# put OWNER MODE DEST < content: replace DEST if content, owner or mode differ; 0 if it changed
put() {
    local owner=$1 mode=$2 dest=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if cmp -s "$tmp" "$dest" 2>/dev/null && [[ $(stat -c '%U %a' "$dest") == "$owner ${mode#0}" ]]; then
        rm -f "$tmp"
        return 1
    fi
    install -o "$owner" -g "$owner" -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
}

# ---------------------------------------------------------------- daemons

running() { start-stop-daemon --status --pidfile "$RUN/$1.pid" --exec "${EXE[$1]}"; }
pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

# launch NAME [start-stop-daemon options] -- ARGS: start NAME in the background unless it runs
launch() {
    local name=$1
    shift
    if running "$name"; then
        log "  $name already running (pid $(pid_of "$name"))"
        return 0
    fi
    start-stop-daemon --start --background --make-pidfile --pidfile "$RUN/$name.pid" \
        --output "$LOG/$name.log" --exec "${EXE[$name]}" "$@"
}

halt() {
    local name=$1
    start-stop-daemon --stop --quiet --oknodo --retry TERM/20/KILL/5 --remove-pidfile \
        --pidfile "$RUN/$name.pid" --exec "${EXE[$name]}"
}

start_munged() {
    install -d -o munge -g munge -m 0755 /run/munge
    launch munged --chuid munge -- --foreground --force
    wait_for munged 20 bash -c 'munge -n | unmunge'
}

sql() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot; }

start_mariadbd() {
    if [[ ! -d $STATE/mysql/data/mysql ]]; then
        install -d -o mysql -g mysql -m 0750 "$STATE/mysql"
        mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql/data" \
            --auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install.log" 2>&1
    fi
    launch mariadbd -- --no-defaults --user=mysql --datadir="$STATE/mysql/data" \
        --socket="$DB_SOCKET" --pid-file="$STATE/mysql/mariadbd.pid" \
        --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
        --innodb-buffer-pool-size=1G --innodb-lock-wait-timeout=900
    wait_for mariadbd 60 mariadb-admin --no-defaults --socket="$DB_SOCKET" -uroot ping
    sql <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$STATE/db_password")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
}

start_slurmdbd() {
    launch slurmdbd -- -D
    wait_for slurmdbd 60 sacctmgr -n list cluster
}

start_slurmctld() {
    launch slurmctld -- -D
    wait_for slurmctld 60 scontrol ping
}

start_slurmd() {
    launch slurmd -- -D -N localhost
    wait_for "node localhost up" 60 node_up
}

# For a restart on its own: slurmd is already running, wait until it has registered again.
restart_slurmctld() {
    start_slurmctld
    wait_for "node localhost up" 60 node_up
}

# For a restart on its own: slurmdbd is already running, wait until it reaches the database again.
restart_mariadbd() {
    start_mariadbd
    wait_for "slurmdbd to reach the database" 60 sacctmgr -n list cluster
}

# Up and responding: a trailing * would mean slurmd does not answer.
node_up() { [[ $(sinfo -h -n localhost -o %T) =~ ^(idle|mixed|allocated|completing)$ ]]; }

rest_ping() {
    local token
    token=$(scontrol token username=jarvice lifespan=60) || return 1
    curl -sf --max-time 5 -H "X-SLURM-USER-NAME: jarvice" -H "X-SLURM-USER-TOKEN: ${token#SLURM_JWT=}" \
        "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping" | grep -q '"pings"'
}

start_slurmrestd() {
    # slurmrestd refuses to run as root or SlurmUser; SLURM_JWT=daemon makes it pass the
    # callers' tokens on instead of using munge.
    SLURM_JWT=daemon launch slurmrestd --chuid slurmrest -- \
        -a rest_auth/jwt -s "$REST_PLUGINS" "127.0.0.1:$REST_PORT"
    wait_for "slurmrestd ping" 30 rest_ping
}

ssh_as() {
    local user=$1
    shift
    ssh -F /dev/null -i "$KEYS/$user" -p "$SSH_PORT" -o BatchMode=yes -o IdentitiesOnly=yes \
        -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o ConnectTimeout=5 \
        -o LogLevel=ERROR "$user@127.0.0.1" "$@"
}

start_sshd() {
    install -d -m 0755 /run/sshd
    launch sshd -- -D -e -f "$SSHD_CONFIG"
    wait_for "ssh login" 30 ssh_as jarvice true
}

stop_sshd() {
    # Also end the open sessions (children of the listener), as a crashed server would.
    local pid sessions=()
    pid=$(pid_of sshd)
    [[ -z $pid ]] || mapfile -t sessions < <(pgrep -P "$pid")
    halt sshd
    ((${#sessions[@]} == 0)) || kill -TERM "${sessions[@]}" 2>/dev/null || true
}

# ---------------------------------------------------------------- setup

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == 'install ok installed' ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "  installing ${missing[*]}"
    local guard='' rc=0 out
    out=$(mktemp)
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # Keep the packages' postinst from starting their own munged/sshd/mariadb.
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        guard=1
    fi
    {
        apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                -o Dpkg::Use-Pty=0 "${missing[@]}"
    } >"$out" 2>&1 || rc=$?
    [[ -z $guard ]] || rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || cat "$out" >&2
    rm -f "$out"
    return $rc
}

ensure_users() {
    local u
    for u in "${LOGIN_USERS[@]}"; do
        id -u "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"
        # useradd leaves the account locked ('!'); sshd without PAM refuses locked accounts.
        [[ $(getent shadow "$u" | cut -d: -f2) == '*' ]] || usermod -p '*' "$u"
    done
    id -u slurmrest >/dev/null 2>&1 || useradd -r -M -d /nonexistent -s /usr/sbin/nologin slurmrest
}

make_dirs() {
    install -d -m 0755 "$STATE" "$RUN" "$LOG" "$KEYS" "$BIN" "$STATE/sshd" "$STATE/slurmd"
    install -d -m 1777 "$SCRATCH"
    install -d -o slurm -g slurm -m 0755 "$STATE/slurm" "$STATE/slurm/state"
}

make_secrets() {
    local u
    if [[ ! -s $JWT_KEY ]]; then
        head -c 32 /dev/urandom >"$JWT_KEY.new"
        chown slurm:slurm "$JWT_KEY.new"
        chmod 0600 "$JWT_KEY.new"
        mv "$JWT_KEY.new" "$JWT_KEY"
    fi
    [[ -s $STATE/db_password ]] || (umask 077 && head -c 18 /dev/urandom | base64 >"$STATE/db_password")
    [[ -f $STATE/sshd/ssh_host_ed25519_key ]] ||
        ssh-keygen -q -t ed25519 -N '' -C dssr-test-cluster -f "$STATE/sshd/ssh_host_ed25519_key"
    for u in "${LOGIN_USERS[@]}"; do
        [[ -f $KEYS/$u ]] || ssh-keygen -q -t ed25519 -N '' -C "$u@dssr-test-cluster" -f "$KEYS/$u"
    done
}

slurm_conf() {
    local cpus mem_total mem_avail mem
    cpus=$(nproc)
    mem_total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    mem_avail=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
    # Half the memory, rounded to GiB so the file stays the same from one `up` to the next.
    mem=$((mem_total / 2 / 1024 * 1024))
    ((mem < mem_avail * 9 / 10)) || mem=$((mem_avail * 9 / 10))
    cat <<EOF
# Written by tests/cluster/cluster.sh (DSSR test cluster); state in $STATE
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
StateSaveLocation=$STATE/slurm/state
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurm/slurmctld.pid
SlurmdPidFile=$STATE/slurmd/slurmd.pid
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=5
KillWait=5
InactiveLimit=0
Waittime=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobCompType=jobcomp/none
MailProg=/bin/true
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=other Nodes=localhost MaxTime=INFINITE State=UP
EOF
}

slurmdbd_conf() {
    cat <<EOF
# Written by tests/cluster/cluster.sh (DSSR test cluster)
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$JWT_KEY
DbdHost=localhost
SlurmUser=slurm
PidFile=$STATE/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$STATE/db_password")
StorageLoc=slurm_acct_db
EOF
}

sshd_conf() {
    cat <<EOF
# Written by tests/cluster/cluster.sh (DSSR test cluster)
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $STATE/sshd/ssh_host_ed25519_key
PidFile $RUN/sshd.pid
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers ${LOGIN_USERS[*]}
AuthorizedKeysFile $KEYS/%u.pub
# Lets DSSR_CLUSTER_DIR live below a world-writable directory such as /tmp.
StrictModes no
MaxSessions 100
MaxStartups 200
PrintMotd no
# Non-interactive logins read no profile; sbatch passes PATH on to the job.
SetEnv PATH=$SSH_PATH
Subsystem sftp internal-sftp
EOF
}

id_mapping() {
    local u
    echo "users_id_mapping:"
    for u in "${MAPPED_USERS[@]}"; do
        cat <<EOF
  - user: ${u^} Test
    jarvice_user: $u
    mail: $u@example.org
    mapped_user: $u
    ssh_private_key_b64: "$(base64 -w0 "$KEYS/$u")"
EOF
    done
}

# Sets SLURM_CHANGED / SSHD_CHANGED when a running daemon must be restarted to see new config.
write_configs() {
    SLURM_CHANGED=0 SSHD_CHANGED=0
    install -d -m 0755 /etc/slurm
    if slurm_conf | put root 0644 /etc/slurm/slurm.conf; then SLURM_CHANGED=1; fi
    if slurmdbd_conf | put slurm 0600 /etc/slurm/slurmdbd.conf; then SLURM_CHANGED=1; fi
    if sshd_conf | put root 0644 "$SSHD_CONFIG"; then SSHD_CHANGED=1; fi
    install -d -m 0755 /run/sshd
    /usr/sbin/sshd -t -f "$SSHD_CONFIG"
    id_mapping | put root 0600 "$ID_MAPPING" || true
    echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$STATE/sshd/ssh_host_ed25519_key.pub")" |
        put root 0644 "$KNOWN_HOSTS" || true
}

restart_changed() {
    local d
    if ((SLURM_CHANGED)); then
        for d in slurmrestd slurmd slurmctld slurmdbd; do
            if running "$d"; then log "  config changed: stopping $d" && halt "$d"; fi
        done
    fi
    if ((SSHD_CHANGED)) && running sshd; then log "  config changed: stopping sshd" && stop_sshd; fi
}

has() { [[ -n $(sacctmgr -n -P "$@") ]]; }
add() { sacctmgr -i add "$@" >/dev/null; }

# Accounts, users and coordinators; sacctmgr add fails when nothing is new, so check first.
accounting() {
    has show cluster "$CLUSTER" format=cluster || add cluster "$CLUSTER"
    local u
    for u in "${MAPPED_USERS[@]}"; do
        has show account "acct_$u" format=account ||
            add account "acct_$u" cluster="$CLUSTER" description="DSSR test $u" organization=dssr
        has show assoc where user="$u" account="acct_$u" format=user ||
            add user "$u" account="acct_$u" defaultaccount="acct_$u" cluster="$CLUSTER"
        has show assoc where user=jarvice account="acct_$u" format=user ||
            add user jarvice account="acct_$u" defaultaccount="acct_${MAPPED_USERS[0]}" cluster="$CLUSTER"
    done
    local accounts
    accounts=$(printf 'acct_%s,' "${MAPPED_USERS[@]}")
    [[ $(sacctmgr -n -P show user jarvice withcoord format=coordinators) == *"acct_${MAPPED_USERS[-1]}"* ]] ||
        add coordinator account="${accounts%,}" names=jarvice
}

check_logins() {
    local out
    # shellcheck disable=SC2016 # expands on the far side
    out=$(ssh_as kirby 'echo "$PATH"')
    [[ $out == "$SSH_PATH" ]] || die "PATH over ssh is '$out', expected '$SSH_PATH'"
    sacct -n -X -a -S now-1hours >/dev/null || die "sacct does not work"
}

up() {
    [[ $(id -u) == 0 ]] || die "up must run as root"
    local t0
    t0=$(usec)
    log "cluster up ($STATE)"
    timed "packages" install_packages
    timed "users, keys, config" eval 'ensure_users; make_dirs; make_secrets; write_configs; restart_changed'
    timed "munged" start_munged
    timed "mariadbd" start_mariadbd
    timed "slurmdbd" start_slurmdbd
    timed "accounts" accounting
    timed "slurmctld" start_slurmctld
    timed "slurmd (node idle)" start_slurmd
    timed "slurmrestd" start_slurmrestd
    timed "sshd" start_sshd
    timed "checks (ssh PATH, sacct)" check_logins
    local us=$(( $(usec) - t0 ))
    log "cluster up in $((us / 1000000)).$((us / 100000 % 10))s:"
    log "  ssh        jarvice|kirby|mario@127.0.0.1 -p $SSH_PORT (keys in $KEYS)"
    log "  slurmrestd http://127.0.0.1:$REST_PORT ($REST_PLUGINS)"
    log "  node       $(sinfo -h -N -n localhost -o '%N %T cpus=%c mem=%m' | head -n1)," \
        "partitions $(sinfo -h -o %P | paste -sd' ')"
    log "  env        eval \"\$($0 env)\""
}

down() {
    [[ $(id -u) == 0 ]] || die "down must run as root"
    if running slurmctld; then
        # Jobs' slurmstepd outlive slurmd; cancel them while the controller still runs.
        squeue -h -o %i | xargs -r scancel || true
        # shellcheck disable=SC2016
        wait_for "jobs to end" 20 bash -c '[[ -z $(squeue -h -o %i) ]]' || true
    fi
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        if [[ ${DAEMONS[i]} == sshd ]]; then stop_sshd; else halt "${DAEMONS[i]}"; fi
    done
    rm -rf "$STATE"
    log "cluster down ($STATE removed)"
}

status() {
    local d
    for d in "${DAEMONS[@]}"; do
        if running "$d"; then
            printf '%-11s running (pid %s)\n' "$d" "$(pid_of "$d")"
        else
            printf '%-11s stopped\n' "$d"
        fi
    done
    if running slurmctld; then
        sinfo
        squeue -a
    fi
}

env_lines() {
    [[ -f $KEYS/jarvice ]] || die "no cluster in $STATE (run: $0 up)"
    local name value
    while read -r name value; do
        printf 'export %s=%q\n' "$name" "$value"
    done <<EOF
JARVICE_SLURM_CLUSTER_ADDR 127.0.0.1
JARVICE_SLURM_CLUSTER_PORT $SSH_PORT
JARVICE_SLURM_SSH_USER jarvice
JARVICE_SLURM_SSH_PKEY $(base64 -w0 "$KEYS/jarvice")
JARVICE_SLURM_SSH_KNOWN_HOSTS $KNOWN_HOSTS
JARVICE_SLURM_ID_MAPPING_FILE $ID_MAPPING
JARVICE_JOB_SCRATCH_DIR $SCRATCH
JARVICE_SLURMRESTD_ADDR 127.0.0.1
JARVICE_SLURMRESTD_PORT $REST_PORT
JARVICE_SLURMRESTD_JWT_KEY_FILE $JWT_KEY
DSSR_CLUSTER_DIR $STATE
DSSR_CLUSTER_BIN $BIN
EOF
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    env) env_lines ;;
    stop-sshd) stop_sshd ;;
    start-sshd) start_sshd ;;
    stop-slurmctld) halt slurmctld ;;
    start-slurmctld) restart_slurmctld ;;
    stop-slurmrestd) halt slurmrestd ;;
    start-slurmrestd) start_slurmrestd ;;
    stop-slurmdbd) halt slurmdbd ;;
    start-slurmdbd) start_slurmdbd ;;
    stop-mariadb) halt mariadbd ;;
    start-mariadb) restart_mariadbd ;;
    *) die "usage: $0 up|down|status|env|stop-{sshd,slurmctld,slurmrestd,slurmdbd,mariadb}|start-{...}" ;;
esac
