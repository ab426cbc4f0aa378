# Shell functions both test clusters use (tests/cluster/cluster.sh for Slurm, gridengine.sh for
# Grid Engine), sourced by them. They read the caller's globals: KEYS, SSH_PORT, KNOWN_HOSTS,
# MAPPED_USERS, and its pid_of and halt.
# shellcheck shell=bash

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
        ((SECONDS < deadline)) || { log "${0##*/}: timed out waiting for $what (logs: $LOG)"; return 1; }
        sleep 0.2
    done
}

debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
    [[ -n $uri ]] || uri=$(awk '/^deb / && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    echo "${DSSR_CLUSTER_MIRROR:-${uri:-http://deb.debian.org/debian}}"
}

# mounts_below DIR: what is mounted below DIR, deepest first
mounts_below() { findmnt -rn -o TARGET | awk -v dir="$1/" 'index($0, dir) == 1' | sort -r; }

unmount_below() {
    local m
    while read -r m; do
        [[ -z $m ]] || umount "$m" 2>/dev/null || umount -l "$m"
    done < <(mounts_below "$1")
}

ssh_as() {
    local user=$1
    shift
    ssh -F /dev/null -i "$KEYS/$user" -p "$SSH_PORT" -o BatchMode=yes -o IdentitiesOnly=yes \
        -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o ConnectTimeout=5 \
        -o LogLevel=ERROR "$user@127.0.0.1" "$@"
}

stop_sshd() {
    # Also end the open sessions (children of the listener), as a crashed server would.
    local pid sessions=()
    pid=$(pid_of sshd)
    [[ -z $pid ]] || mapfile -t sessions < <(pgrep -P "$pid")
    halt sshd
    ((${#sessions[@]} == 0)) || kill -TERM "${sessions[@]}" 2>/dev/null || true
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

# sshd_config WHO COMMENT SETENV: the sshd's config, written by WHO; SETENV (after COMMENT) is what
# every login gets (non-interactive logins read no profile)
sshd_config() {
    cat <<EOF
# Written by $1
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
# $2
SetEnv $3
Subsystem sftp internal-sftp
EOF
}

# daemons_status: each of DAEMONS running (with its pid) or stopped
daemons_status() {
    local d
    for d in "${DAEMONS[@]}"; do
        if running "$d"; then
            printf '%-11s running (pid %s)\n' "$d" "$(pid_of "$d")"
        else
            printf '%-11s stopped\n' "$d"
        fi
    done
}
