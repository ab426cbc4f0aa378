#!/usr/bin/env bash
# A real single-host Slurm cluster for DSSR's integration tests (Debian 12, root, no systemd).
#
#   cluster.sh up       install what is missing, start everything, wait until it answers
#   cluster.sh down     stop everything `up` started and remove the state directory
#   cluster.sh status   show what runs
#   cluster.sh env      print `export` lines that point DSSR at this cluster:
#                         eval "$(tests/cluster/cluster.sh env)"
#   cluster.sh stop-sshd|start-sshd|stop-slurmctld|start-slurmctld|stop-slurmrestd|start-slurmrestd
#   cluster.sh stop-slurmdbd|start-slurmdbd|stop-mariadb|start-mariadb|stop-registry|start-registry
#
# DSSR_CLUSTER_SCHEDULER=gridengine runs tests/cluster/gridengine.sh instead (Grid Engine).
# DSSR_CLUSTER_SLURM picks the Slurm version: 22.05 (default) runs the host's Debian 12
# packages; 24.11 (Debian trixie) and 26.05 (Debian sid) run in a chroot that mmdebstrap
# builds from Debian's packages and that stays in DSSR_CLUSTER_ROOT, on ports of their own, so
# all three can run at once. Give every command the same DSSR_CLUSTER_* settings.
# 26.05's node runs real Apptainer (its slurmd in a pivot_root mount namespace); every cluster
# has a local OCI registry with TLS and basic auth (DSSR_CLUSTER_REGISTRY* in `env`).
#
# State lives in DSSR_CLUSTER_DIR (default /var/lib/dssr-test-cluster, or ...-24.11/-26.05).
# Outside it, `up` writes {slurm,slurmdbd}.conf in /etc/slurm (of the chroot for 24.11/26.05)
# and creates the users jarvice, kirby, mario and slurmrest (in the chroot too, with the
# host's uids); `down` leaves those, and the chroot, in place.
set -euo pipefail

log() { printf '%s\n' "$*" >&2; }
die() { log "cluster.sh: $*"; exit 1; }
# shellcheck source=tests/cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# DSSR_CLUSTER_SCHEDULER=gridengine: a Grid Engine cluster instead (tests/cluster/gridengine.sh).
case ${DSSR_CLUSTER_SCHEDULER:-slurm} in
    slurm) ;;
    gridengine) exec bash "$(dirname "${BASH_SOURCE[0]}")/gridengine.sh" "$@" ;;
    *) die "DSSR_CLUSTER_SCHEDULER=$DSSR_CLUSTER_SCHEDULER: choose slurm (the default) or gridengine" ;;
esac

SLURM_VERSION=${DSSR_CLUSTER_SLURM:-22.05}
case $SLURM_VERSION in
    # suite (empty: the host's packages), then default ports: ssh, slurmrestd, MariaDB, the
    # first of slurmctld/slurmd/slurmdbd (empty: Slurm's defaults, 6817-6819), the registry
    22.05) defaults=('' 22022 6820 13306 '' 15022) ;;
    24.11) defaults=(trixie 22024 6824 13324 16817 15024) ;;
    26.05) defaults=(sid 22026 6826 13326 26817 15026) ;;
    *) die "DSSR_CLUSTER_SLURM=$SLURM_VERSION: choose 22.05, 24.11 or 26.05" ;;
esac
SUITE=${defaults[0]}
if [[ -z $SUITE ]]; then
    STATE=${DSSR_CLUSTER_DIR:-/var/lib/dssr-test-cluster}
    ROOT=''
else
    STATE=${DSSR_CLUSTER_DIR:-/var/lib/dssr-test-cluster-$SLURM_VERSION}
    ROOT=${DSSR_CLUSTER_ROOT:-/var/cache/dssr-test-cluster/slurm-$SLURM_VERSION}
fi
SSH_PORT=${DSSR_CLUSTER_SSH_PORT:-${defaults[1]}}
REST_PORT=${DSSR_CLUSTER_REST_PORT:-${defaults[2]}}
DB_PORT=${DSSR_CLUSTER_DB_PORT:-${defaults[3]}}
CTLD_PORT=${DSSR_CLUSTER_SLURMCTLD_PORT:-${defaults[4]}}
REGISTRY_PORT=${DSSR_CLUSTER_REGISTRY_PORT:-${defaults[5]}}
# Real Apptainer on the node (Debian sid packages it; Debian 12 and trixie do not): slurmd runs
# in a pivot_root mount namespace, since Apptainer refuses a chroot.
APPTAINER=$( [[ $SLURM_VERSION == 26.05 ]] && echo 1 || echo '')
CLUSTER=dssr
LOGIN_USERS=(jarvice kirby mario)
MAPPED_USERS=(kirby mario)

RUN=$STATE/run          # pid files written by start-stop-daemon
LOG=$STATE/log          # stdout/stderr of every daemon
KEYS=$STATE/keys
BIN=$STATE/bin
SCRATCH=$STATE/scratch
JWT_KEY=$STATE/jwt_hs256.key
OIDC_KEY=$STATE/oidc_rs256.pem   # the test identity provider's signing key (tests/oidc)
JWKS=$STATE/oidc_jwks.json       # its public half, for Slurm's AuthAltParameters=jwks=
# The daemons' own config: /etc/slurm's plus jwks=. /etc/slurm stays as checkouts of this script
# without jwks= write it, so that their `up` (shared cluster) finds no change and restarts nothing.
DAEMON_ETC=$STATE/slurm/etc
KNOWN_HOSTS=$STATE/known_hosts
ID_MAPPING=$STATE/users_id_mapping_configuration.yaml
SSHD_CONFIG=$STATE/sshd/sshd_config
DB_SOCKET=$STATE/mysql/mysqld.sock
SSH_PATH=$BIN:/usr/local/bin:/usr/bin:/bin
# The local OCI registry (Debian's docker-registry on the host): TLS from a CA of its own,
# htpasswd (bcrypt) basic auth.
REGISTRY=$STATE/registry
REGISTRY_CA=$REGISTRY/ca.pem
REGISTRY_USER=dssr
SLURM_BIN=/usr/bin      # root's Slurm commands for this cluster, from the host

# name -> executable, in start order
declare -A EXE=([munged]=/usr/sbin/munged [mariadbd]=/usr/sbin/mariadbd
                [slurmdbd]=/usr/sbin/slurmdbd [slurmctld]=/usr/sbin/slurmctld
                [slurmd]=/usr/sbin/slurmd [slurmrestd]=/usr/sbin/slurmrestd [sshd]=/usr/sbin/sshd
                [registry]=/usr/bin/docker-registry)
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd slurmrestd sshd registry)

if [[ -z $ROOT ]]; then
    REST_PLUGINS=openapi/v0.0.38,openapi/dbv0.0.38
    REST_PING=v0.0.38
    PACKAGES=(slurm-wlm slurmrestd slurm-wlm-jwt-plugin slurmdbd slurm-wlm-mysql-plugin munge
              openssh-server mariadb-server shellcheck docker-registry apache2-utils openssl curl)
    IN=()
else
    # 23.02 and later serve every data parser they have through these two plugins.
    REST_PLUGINS=openapi/slurmctld,openapi/slurmdbd
    REST_PING=$( [[ $SLURM_VERSION == 24.11 ]] && echo v0.0.42 || echo v0.0.45)
    # On the host: mmdebstrap builds the chroot, MariaDB (the host's) serves its accounting,
    # ssh and curl check it from outside.
    PACKAGES=(mmdebstrap mariadb-server openssh-client curl docker-registry apache2-utils openssl)
    ROOT_PACKAGES=(slurm-wlm slurmrestd slurm-wlm-jwt-plugin slurmdbd slurm-wlm-mysql-plugin munge
                   openssh-server python3 ca-certificates)
    # Apptainer and what it needs as a user: squashfuse mounts a SIF, fuse2fs an ext3 overlay,
    # e2fsprogs makes one (`overlay create`).
    [[ -z $APPTAINER ]] ||
        ROOT_PACKAGES+=(apptainer squashfs-tools squashfuse fuse2fs fuse-overlayfs e2fsprogs)
    # A PATH of its own: a caller's PATH may hold DSSR_CLUSTER_SLURM_BIN, which the chroot sees too.
    ROOT_ENV=(/usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin)
    IN=(chroot "$ROOT" "${ROOT_ENV[@]}")
    SLURM_BIN=$STATE/slurm-bin
    # The chroot's daemons share the host's process table: a pid file names one of them only
    # together with the chroot's own executable (never the host's, never by name).
    # /usr/sbin/slurmctld is an alternatives link that points into the HOST's /etc when read
    # from outside, so resolve it inside.
    root_exes() {
        local name real
        for name in munged slurmdbd slurmctld slurmd slurmrestd sshd; do
            real=$(chroot "$ROOT" readlink -f "/usr/sbin/$name")
            EXE[$name]=$ROOT$real
        done
    }
    if [[ -f $ROOT/.dssr-test-cluster ]]; then
        root_exes
    else
        for name in munged slurmdbd slurmctld slurmd slurmrestd sshd; do EXE[$name]=$ROOT/usr/sbin/$name; done
        [[ ! -e $ROOT ]] || die "$ROOT is not a chroot made by cluster.sh (no .dssr-test-cluster in it)"
    fi
fi

# inroot CMD...: run CMD in the cluster's root (the chroot, or the host for 22.05)
inroot() { "${IN[@]}" "$@"; }

# owner USER: "uid:gid" of USER in the cluster's root (the chroot's slurm is not the host's)
owner() { echo "$(inroot id -u "$1"):$(inroot id -g "$1")"; }

# put USER MODE DEST < content: replace DEST if content, owner or mode differ; 0 if it changed
put() {
    local ids mode=$2 dest=$3 tmp
    ids=$(owner "$1")
    tmp=$(mktemp)
    cat >"$tmp"
    if cmp -s "$tmp" "$dest" 2>/dev/null && [[ $(stat -c '%u:%g %a' "$dest") == "$ids ${mode#0}" ]]; then
        rm -f "$tmp"
        return 1
    fi
    install -o "${ids%:*}" -g "${ids#*:}" -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
}

# ---------------------------------------------------------------- daemons

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

# Whether the pid file names a process of NAME's executable, compared by device and inode: a
# daemon in a pivot_root namespace (slurmd on 26.05) shows /usr/sbin/slurmd as its path, which
# outside is the host's file, so start-stop-daemon's --exec cannot tell.
running() {
    local pid
    pid=$(pid_of "$1")
    [[ -n $pid && -e ${EXE[$1]} ]] &&
        [[ $(stat -L -c %d:%i "/proc/$pid/exe" 2>/dev/null) == "$(stat -L -c %d:%i "${EXE[$1]}")" ]]
}

# launch NAME USER ARGS...: start NAME as USER (root if empty) in the background unless it runs
launch() {
    local name=$1 user=$2 how
    shift 2
    if running "$name"; then
        log "  $name already running (pid $(pid_of "$name"))"
        return 0
    fi
    if [[ $name == slurmd && -n $APPTAINER ]]; then
        # Apptainer aborts in a chroot ("weak chrooted environment"); in a mount namespace whose
        # root is the cluster's root (pivot_root) it runs, and every job inherits it from slurmd.
        # unshare and sh exec in the same process, so the pid file names slurmd.
        how=(--startas /usr/bin/unshare -- --mount --propagation private /bin/sh -c "$PIVOT_ROOT"
             sh "$ROOT" "${ROOT_ENV[@]}" "/usr/sbin/$name")
    elif [[ -n $ROOT && $name != mariadbd && $name != registry ]]; then
        # chroot execs the daemon in the same process, so the pid file names the daemon.
        # (/usr/sbin/slurmctld, not the file it links to: Slurm tells its daemons apart by name.)
        how=(--startas /usr/sbin/chroot -- ${user:+"--userspec=$(owner "$user")"} "$ROOT"
             "${ROOT_ENV[@]}" "/usr/sbin/$name")
    else
        how=(${user:+--chuid "$user"} --)
    fi
    start-stop-daemon --start --background --make-pidfile --pidfile "$RUN/$name.pid" \
        --output "$LOG/$name.log" --exec "${EXE[$name]}" "${how[@]}" "$@"
}

# PIVOT_ROOT ROOT CMD...: run CMD with ROOT as the root of this (new) mount namespace
# shellcheck disable=SC2016 # expands in that sh
PIVOT_ROOT='set -e; root=$1; shift
mount --rbind "$root" "$root"; cd "$root"
mount -t proc proc proc; mount --rbind /sys sys; mount --rbind /dev dev
pivot_root . .oldroot; umount -l /.oldroot; cd /
exec "$@"'

halt() {
    local name=$1
    if running "$name"; then
        start-stop-daemon --stop --quiet --oknodo --retry TERM/20/KILL/5 --pid "$(pid_of "$name")"
    fi
    rm -f "$RUN/$name.pid"
}

start_munged() {
    inroot install -d -o munge -g munge -m 0755 /run/munge
    launch munged munge --foreground --force
    wait_for munged 20 inroot bash -c 'munge -n | unmunge'
}

sql() { mariadb --no-defaults --socket="$DB_SOCKET" -uroot; }

start_mariadbd() {
    if [[ ! -d $STATE/mysql/data/mysql ]]; then
        install -d -o mysql -g mysql -m 0750 "$STATE/mysql"
        mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/mysql/data" \
            --auth-root-authentication-method=socket --skip-test-db >"$LOG/mariadb-install.log" 2>&1
    fi
    launch mariadbd '' --no-defaults --user=mysql --datadir="$STATE/mysql/data" \
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
    SLURM_CONF=$DAEMON_ETC/slurm.conf launch slurmdbd '' -D
    wait_for slurmdbd 60 inroot sacctmgr -n list cluster
}

start_slurmctld() {
    SLURM_CONF=$DAEMON_ETC/slurm.conf launch slurmctld '' -D
    wait_for slurmctld 60 inroot scontrol ping
}

start_slurmd() {
    SLURM_CONF=$DAEMON_ETC/slurm.conf launch slurmd '' -D -N localhost
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
node_up() { [[ $(inroot sinfo -h -n localhost -o %T) =~ ^(idle|mixed|allocated|completing)$ ]]; }

rest_ping() {
    local token
    token=$(inroot scontrol token username=jarvice lifespan=60) || return 1
    curl -sf --max-time 5 -H "X-SLURM-USER-NAME: jarvice" -H "X-SLURM-USER-TOKEN: ${token#SLURM_JWT=}" \
        "http://127.0.0.1:$REST_PORT/slurm/$REST_PING/ping" | grep -q '"pings"'
}

start_slurmrestd() {
    # slurmrestd refuses to run as root or SlurmUser; SLURM_JWT=daemon makes it pass the
    # callers' tokens on instead of using munge.
    SLURM_JWT=daemon launch slurmrestd slurmrest \
        -a rest_auth/jwt -s "$REST_PLUGINS" "127.0.0.1:$REST_PORT"
    wait_for "slurmrestd ping" 30 rest_ping
}

start_sshd() {
    inroot install -d -m 0755 /run/sshd
    launch sshd '' -D -e -f "$SSHD_CONFIG"
    wait_for "ssh login" 30 ssh_as jarvice true
}

registry_password() { cat "$REGISTRY/password"; }

registry_ping() {
    curl -sf --max-time 5 --cacert "$REGISTRY_CA" -u "$REGISTRY_USER:$(registry_password)" \
        "https://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null
}

start_registry() {
    launch registry '' serve "$REGISTRY/config.yml"
    wait_for "the registry" 30 registry_ping
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

# The chroot gets the login users with the host's names and uids (and, bind-mounted, their
# homes), so that the owner of a job's files, `id -un` and $HOME agree inside and out;
# slurmrest is its own system user there.
ensure_root_users() {
    local u uid gid
    for u in "${LOGIN_USERS[@]}"; do
        uid=$(id -u "$u") gid=$(id -g "$u")
        inroot getent group "$u" >/dev/null || inroot groupadd -g "$gid" "$u"
        inroot id -u "$u" >/dev/null 2>&1 || inroot useradd -m -u "$uid" -g "$gid" -s /bin/bash "$u"
        [[ $(inroot id -u "$u"):$(inroot id -g "$u") == "$uid:$gid" ]] ||
            die "$u has uid:gid $(owner "$u") in $ROOT, $uid:$gid on the host"
        [[ $(inroot getent shadow "$u" | cut -d: -f2) == '*' ]] || inroot usermod -p '*' "$u"
    done
    inroot id -u slurmrest >/dev/null 2>&1 || inroot useradd -r -M -d /nonexistent -s /usr/sbin/nologin slurmrest
}

make_dirs() {
    local slurm
    slurm=$(owner slurm)
    install -d -m 0755 "$STATE" "$RUN" "$LOG" "$KEYS" "$BIN" "$STATE/sshd" "$STATE/slurmd"
    install -d -m 1777 "$SCRATCH"
    install -d -o "${slurm%:*}" -g "${slurm#*:}" -m 0755 "$STATE/slurm" "$STATE/slurm/state"
}

# ---------------------------------------------------------------- the chroot (24.11, 26.05)

# A mirror that is a snapshot (the host's may be) has Release files past their Valid-Until.
APT_NO_VALID_UNTIL=Acquire::Check-Valid-Until=false

# Built once into $ROOT.new and moved into place, so a half-built chroot is never used; kept
# after `down`, so the next `up` takes seconds.
build_root() {
    if [[ -f $ROOT/.dssr-test-cluster ]]; then
        root_packages
        return 0
    fi
    local new=$ROOT.new out rc=0 version
    unmount_below "$new"   # an mmdebstrap killed midway leaves its /proc mounted
    rm -rf --one-file-system "$new"
    install -d -m 0755 "$(dirname "$ROOT")"
    out=$(mktemp)
    log "  mmdebstrap $SUITE from $(debian_mirror) into $new"
    # mmdebstrap, not debootstrap: one apt run instead of a dpkg run per package, a third of
    # the CPU time and half the wall time measured on 2 busy cores (52 s for trixie).
    mmdebstrap --variant=minbase --aptopt="${APT_NO_VALID_UNTIL%=*} \"false\"" \
        --include="$(IFS=, && echo "${ROOT_PACKAGES[*]}")" \
        "$SUITE" "$new" "$(debian_mirror)" >"$out" 2>&1 || rc=$?
    if ((rc)); then
        tail -n 30 "$out" >&2
        rm -f "$out"
        unmount_below "$new"
        die "mmdebstrap $SUITE failed ($rc)"
    fi
    rm -f "$out"
    # shellcheck disable=SC2016 # a dpkg-query format
    version=$(chroot "$new" dpkg-query -W -f='${Version}' slurm-wlm)
    [[ $version == "$SLURM_VERSION".* ]] ||
        die "Debian $SUITE now has Slurm $version, not $SLURM_VERSION: update cluster.sh"
    # No package script in the chroot starts a daemon; the host keys sshd would make are unused.
    printf '#!/bin/sh\nexit 101\n' >"$new/usr/sbin/policy-rc.d"
    chmod 0755 "$new/usr/sbin/policy-rc.d"
    rm -f "$new"/etc/ssh/ssh_host_*
    echo "Slurm $version from Debian $SUITE, built by DSSR's tests/cluster/cluster.sh" >"$new/.dssr-test-cluster"
    mv "$new" "$ROOT"
    root_exes
}

# A chroot built before ROOT_PACKAGES grew gets what it lacks.
root_packages() {
    local missing=() p
    for p in "${ROOT_PACKAGES[@]}"; do
        # shellcheck disable=SC2016 # a dpkg-query format
        [[ $(chroot "$ROOT" dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == 'install ok installed' ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    log "  installing ${missing[*]} in $ROOT"
    mount_root_system
    chroot "$ROOT" apt-get -o "$APT_NO_VALID_UNTIL" update -qq
    DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null
    chroot "$ROOT" apt-get clean
    root_exes
}

mount_root_system() {
    local d
    for d in /proc /sys /dev /dev/pts; do
        install -d "$ROOT$d"
        mountpoint -q "$ROOT$d" || mount --bind "$d" "$ROOT$d"
    done
    cmp -s /etc/hosts "$ROOT/etc/hosts" || cp /etc/hosts "$ROOT/etc/hosts"
}

# The state directory appears at the same path inside, so every path in the config, the
# keys, the scratch directory and the jobs' files is the same inside and out; so do the homes.
mount_root() {
    local d
    mount_root_system
    for d in /home "$STATE"; do
        install -d -m 0755 "$ROOT$d"
        mountpoint -q "$ROOT$d" || mount --bind "$d" "$ROOT$d"
    done
}

# Root's Slurm commands for this cluster, to run from the host (DSSR_CLUSTER_SLURM_BIN).
slurm_wrappers() {
    local c
    install -d -m 0755 "$SLURM_BIN"
    for c in sacct sacctmgr sbatch scancel scontrol sinfo sprio squeue sshare srun; do
        printf '#!/bin/sh\nexec chroot %q /usr/bin/%s "$@"\n' "$ROOT" "$c" | put root 0755 "$SLURM_BIN/$c" || true
    done
}

make_secrets() {
    local u
    if [[ ! -s $JWT_KEY ]]; then
        head -c 32 /dev/urandom >"$JWT_KEY.new"
        chown "$(owner slurm)" "$JWT_KEY.new"
        chmod 0600 "$JWT_KEY.new"
        mv "$JWT_KEY.new" "$JWT_KEY"
    fi
    [[ -s $STATE/db_password ]] || (umask 077 && head -c 18 /dev/urandom | base64 >"$STATE/db_password")
    if [[ ! -s $OIDC_KEY ]]; then
        (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$OIDC_KEY.new" 2>/dev/null)
        mv "$OIDC_KEY.new" "$OIDC_KEY"
    fi
    registry_secrets
    [[ -f $STATE/sshd/ssh_host_ed25519_key ]] ||
        ssh-keygen -q -t ed25519 -N '' -C dssr-test-cluster -f "$STATE/sshd/ssh_host_ed25519_key"
    for u in "${LOGIN_USERS[@]}"; do
        [[ -f $KEYS/$u ]] || ssh-keygen -q -t ed25519 -N '' -C "$u@dssr-test-cluster" -f "$KEYS/$u"
    done
}

# The registry's CA (DSSR_CLUSTER_REGISTRY_CA), its server certificate for 127.0.0.1 and
# localhost, and one user with a generated password in an htpasswd file (bcrypt).
registry_secrets() {
    install -d -m 0700 "$REGISTRY"
    [[ -s $REGISTRY/password ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr '+/' '-_' >"$REGISTRY/password")
    if [[ ! -s $REGISTRY/htpasswd ]]; then
        (umask 077 && htpasswd -iBn "$REGISTRY_USER" <"$REGISTRY/password" >"$REGISTRY/htpasswd.new" 2>/dev/null)
        mv "$REGISTRY/htpasswd.new" "$REGISTRY/htpasswd"
    fi
    if [[ ! -s $REGISTRY_CA ]]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=DSSR test cluster registry CA" \
            -keyout "$REGISTRY/ca.key" -out "$REGISTRY_CA.new" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$REGISTRY/server.key" \
            -out "$REGISTRY/server.csr" 2>/dev/null
        openssl x509 -req -in "$REGISTRY/server.csr" -CA "$REGISTRY_CA.new" -CAkey "$REGISTRY/ca.key" \
            -CAcreateserial -days 3650 -out "$REGISTRY/server.pem" \
            -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n') 2>/dev/null
        rm -f "$REGISTRY/server.csr"
        chmod 0644 "$REGISTRY_CA.new"
        mv "$REGISTRY_CA.new" "$REGISTRY_CA"
    fi
    chmod 0755 "$REGISTRY"
}

registry_conf() {
    cat <<EOF
# Written by tests/cluster/cluster.sh (DSSR test cluster)
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  tls:
    certificate: $REGISTRY/server.pem
    key: $REGISTRY/server.key
auth:
  htpasswd:
    realm: dssr-test-cluster
    path: $REGISTRY/htpasswd
EOF
}

# The registry's CA, trusted in the cluster's root (the chroot's store; 22.05's root is the
# host, whose store is left alone: its jobs run the double, which pulls nothing).
trust_registry() {
    [[ -n $ROOT ]] || return 0
    local crt=$ROOT/usr/local/share/ca-certificates/dssr-test-cluster-registry.crt
    if ! cmp -s "$REGISTRY_CA" "$crt"; then
        install -D -m 0644 "$REGISTRY_CA" "$crt"
        inroot update-ca-certificates >/dev/null 2>&1
    fi
}

# What Apptainer needs of the node as a user: /dev/fuse for squashfuse and fuse2fs (0600 root
# here), /etc/hosts and /etc/localtime as files to bind, and no test double on the PATH.
apptainer_node() {
    [[ -n $APPTAINER ]] || return 0
    [[ -c /dev/fuse ]] || die "no /dev/fuse: Apptainer needs FUSE to run images as a user (modprobe fuse)"
    chmod 0666 /dev/fuse
    install -d -m 0755 "$ROOT/.oldroot"
    chmod 1777 "$ROOT/tmp"
    if [[ -L $ROOT/etc/localtime || ! -f $ROOT/etc/localtime ]]; then
        cp --remove-destination -L /etc/localtime "$ROOT/etc/localtime"
    fi
    rm -f "$BIN/singularity"
}

# The public half of OIDC_KEY as Slurm's jwks= reads it (RS256, kid, n and e in base64url); the kid
# is the key's RFC 7638 thumbprint, as the test provider names it.
jwks() {
    local n kid
    n=$(openssl rsa -in "$OIDC_KEY" -noout -modulus | cut -d= -f2 | sed 's/../\\x&/g')
    n=$(printf '%b' "$n" | basenc --base64url -w0 | tr -d '=')
    kid=$(printf '{"e":"AQAB","kty":"RSA","n":"%s"}' "$n" | openssl dgst -sha256 -binary | basenc --base64url -w0 |
        tr -d '=')
    printf '{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid":"%s","e":"AQAB","n":"%s"}]}\n' "$kid" "$n"
}

# with_jwks < conf: the daemons' copy of a config, trusting the test identity provider's key too and,
# from Slurm 23.02 on (not 22.05: the host's), reading a token's user from preferred_username when
# it has no sun, as JARVICE's Keycloak tokens have it
with_jwks() {
    local extra=",jwks=$JWKS"
    [[ -z $ROOT ]] || extra+=",userclaimfield=preferred_username"
    sed "s|^AuthAltParameters=jwt_key=$JWT_KEY\$|&$extra|"
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
# Each submit is scheduled at once: by default a job submitted soon after another waits up to
# 3 s for the next pass, which the tests, submitting one job after another, paid on every job.
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=5
# Room for 10,000 queued jobs and more (Slurm's default is 10,000 in all, finished ones
# that MinJobAge still keeps included): bench/bench_scale.py queues 10,000 held jobs.
MaxJobCount=50000
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
    [[ -z $CTLD_PORT ]] || cat <<EOF
# Ports of its own, beside the host's cluster on Slurm's defaults
SlurmctldPort=$CTLD_PORT
SlurmdPort=$((CTLD_PORT + 1))
AccountingStoragePort=$((CTLD_PORT + 2))
EOF
}

# No cgroups in the chroot: proctrack/linuxproc and task/none need none.
cgroup_conf() { echo "CgroupPlugin=disabled"; }

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
    [[ -z $CTLD_PORT ]] || echo "DbdPort=$((CTLD_PORT + 2))"
}

sshd_conf() {
    sshd_config "tests/cluster/cluster.sh (DSSR test cluster)" \
        "Non-interactive logins read no profile; sbatch passes PATH on to the job." "PATH=$SSH_PATH"
}

# Sets SLURM_CHANGED / SSHD_CHANGED when a running daemon must be restarted to see new config.
write_configs() {
    SLURM_CHANGED=0 SSHD_CHANGED=0
    local etc=$ROOT/etc/slurm
    install -d -m 0755 "$etc" "$DAEMON_ETC"
    if slurm_conf | put root 0644 "$etc/slurm.conf"; then SLURM_CHANGED=1; fi
    if slurmdbd_conf | put slurm 0600 "$etc/slurmdbd.conf"; then SLURM_CHANGED=1; fi
    if jwks | put slurm 0644 "$JWKS"; then SLURM_CHANGED=1; fi
    if slurm_conf | with_jwks | put root 0644 "$DAEMON_ETC/slurm.conf"; then SLURM_CHANGED=1; fi
    if slurmdbd_conf | with_jwks | put slurm 0600 "$DAEMON_ETC/slurmdbd.conf"; then SLURM_CHANGED=1; fi
    if [[ -n $ROOT ]]; then
        local dir
        for dir in "$etc" "$DAEMON_ETC"; do
            if cgroup_conf | put root 0644 "$dir/cgroup.conf"; then SLURM_CHANGED=1; fi
        done
    fi
    if sshd_conf | put root 0644 "$SSHD_CONFIG"; then SSHD_CHANGED=1; fi
    if registry_conf | put root 0644 "$REGISTRY/config.yml" && running registry; then
        log "  config changed: stopping the registry" && halt registry
    fi
    inroot install -d -m 0755 /run/sshd
    inroot /usr/sbin/sshd -t -f "$SSHD_CONFIG"
    id_mapping | put root 0600 "$ID_MAPPING" || true
    echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$STATE/sshd/ssh_host_ed25519_key.pub")" |
        put root 0644 "$KNOWN_HOSTS" || true
}

# A daemon that a checkout of this script without DAEMON_ETC started reads /etc/slurm (no jwks=).
reads_etc_slurm() { ! tr '\0' '\n' <"/proc/$(pid_of "$1")/environ" | grep -qxF "SLURM_CONF=$DAEMON_ETC/slurm.conf"; }

restart_changed() {
    local d
    for d in slurmrestd slurmd slurmctld slurmdbd; do
        running "$d" || continue
        if ((SLURM_CHANGED)); then
            log "  config changed: stopping $d" && halt "$d"
        elif [[ $d != slurmrestd ]] && reads_etc_slurm "$d"; then
            log "  $d reads /etc/slurm, not $DAEMON_ETC: stopping it" && halt "$d"
        elif [[ $d == slurmd && -n $APPTAINER && $(readlink "/proc/$(pid_of slurmd)/root") != / ]]; then
            log "  slurmd runs in a chroot, where Apptainer refuses to run: stopping it" && halt slurmd
        fi
    done
    if ((SSHD_CHANGED)) && running sshd; then log "  config changed: stopping sshd" && stop_sshd; fi
}

has() { [[ -n $(inroot sacctmgr -n -P "$@") ]]; }
add() { inroot sacctmgr -i add "$@" >/dev/null; }

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
    [[ $(inroot sacctmgr -n -P show user jarvice withcoord format=coordinators) == *"acct_${MAPPED_USERS[-1]}"* ]] ||
        add coordinator account="${accounts%,}" names=jarvice
}

check_logins() {
    local out
    # shellcheck disable=SC2016 # expands on the far side
    out=$(ssh_as kirby 'echo "$PATH"')
    [[ $out == "$SSH_PATH" ]] || die "PATH over ssh is '$out', expected '$SSH_PATH'"
    inroot sacct -n -X -a -S now-1hours >/dev/null || die "sacct does not work"
}

up() {
    [[ $(id -u) == 0 ]] || die "up must run as root"
    local t0
    t0=$(usec)
    log "cluster up ($STATE)"
    timed "packages" install_packages
    if [[ -n $ROOT ]]; then
        timed "chroot (Debian $SUITE)" build_root
        timed "users, keys, config" eval 'ensure_users; make_dirs; mount_root; ensure_root_users; slurm_wrappers; make_secrets; write_configs; trust_registry; apptainer_node; restart_changed'
    else
        timed "users, keys, config" eval 'ensure_users; make_dirs; make_secrets; write_configs; restart_changed'
    fi
    timed "munged" start_munged
    timed "mariadbd" start_mariadbd
    timed "slurmdbd" start_slurmdbd
    timed "accounts" accounting
    timed "slurmctld" start_slurmctld
    timed "slurmd (node idle)" start_slurmd
    timed "slurmrestd" start_slurmrestd
    timed "sshd" start_sshd
    timed "registry" start_registry
    timed "checks (ssh PATH, sacct)" check_logins
    local us=$(( $(usec) - t0 ))
    log "cluster up in $((us / 1000000)).$((us / 100000 % 10))s: Slurm $(inroot sinfo -V | cut -d' ' -f2)"
    log "  ssh        jarvice|kirby|mario@127.0.0.1 -p $SSH_PORT (keys in $KEYS)"
    log "  slurmrestd http://127.0.0.1:$REST_PORT ($REST_PLUGINS)"
    log "  registry   https://127.0.0.1:$REGISTRY_PORT (user $REGISTRY_USER, CA $REGISTRY_CA)"
    [[ -z $APPTAINER ]] || log "  containers $(inroot apptainer --version) on the node (slurmd in a pivot_root namespace)"
    log "  node       $(inroot sinfo -h -N -n localhost -o '%N %T cpus=%c mem=%m' | head -n1)," \
        "partitions $(inroot sinfo -h -o %P | paste -sd' ')"
    log "  env        eval \"\$($0 env)\""
}

down() {
    [[ $(id -u) == 0 ]] || die "down must run as root"
    if running slurmctld; then
        # Jobs' slurmstepd outlive slurmd; cancel them while the controller still runs.
        inroot squeue -h -o %i | xargs -r "${IN[@]}" scancel || true
        # shellcheck disable=SC2016
        wait_for "jobs to end" 20 inroot bash -c '[[ -z $(squeue -h -o %i) ]]' || true
    fi
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        if [[ ${DAEMONS[i]} == sshd ]]; then stop_sshd; else halt "${DAEMONS[i]}"; fi
    done
    # Only this cluster's mounts in the chroot, which stays for the next `up`.
    [[ -z $ROOT ]] || unmount_below "$ROOT"
    rm -rf "$STATE"
    log "cluster down ($STATE removed)"
}

status() {
    daemons_status
    if running slurmctld; then
        inroot sinfo
        inroot squeue -a
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
DSSR_CLUSTER_OIDC_KEY $OIDC_KEY
DSSR_CLUSTER_JWKS $JWKS
DSSR_CLUSTER_DIR $STATE
DSSR_CLUSTER_BIN $BIN
DSSR_CLUSTER_SLURM $SLURM_VERSION
DSSR_CLUSTER_SLURM_BIN $SLURM_BIN
DSSR_CLUSTER_REGISTRY 127.0.0.1:$REGISTRY_PORT
DSSR_CLUSTER_REGISTRY_USER $REGISTRY_USER
DSSR_CLUSTER_REGISTRY_PASSWORD $(registry_password)
DSSR_CLUSTER_REGISTRY_CA $REGISTRY_CA
DSSR_CLUSTER_APPTAINER ${APPTAINER:-0}
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
    stop-registry) halt registry ;;
    start-registry) start_registry ;;
    start-mariadb) restart_mariadbd ;;
    *) die "usage: $0 up|down|status|env|stop-{sshd,slurmctld,slurmrestd,slurmdbd,mariadb}|start-{...}" ;;
esac
