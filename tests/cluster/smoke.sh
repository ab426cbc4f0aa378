#!/usr/bin/env bash
# Proves that a cluster brought up by cluster.sh works the way DSSR uses it. Run as root after
# `cluster.sh up`, with the same DSSR_CLUSTER_SLURM; exits non-zero at the first failed check.
# It stops and starts sshd, slurmctld and slurmrestd: not on a cluster that others use.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
eval "$("$HERE/cluster.sh" env)"
# squeue, scontrol, ... of this cluster's Slurm (wrappers into its chroot for 24.11 and 26.05)
PATH=$DSSR_CLUSTER_SLURM_BIN:$PATH
KEYS=$DSSR_CLUSTER_DIR/keys
S=$JARVICE_JOB_SCRATCH_DIR
REST=http://$JARVICE_SLURMRESTD_ADDR:$JARVICE_SLURMRESTD_PORT

ok() { printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*" >&2; exit 1; }

# on USER CMD: CMD is one string, expanded by the remote shell
on() {
    local user=$1
    shift
    ssh -F /dev/null -i "$KEYS/$user" -p "$JARVICE_SLURM_CLUSTER_PORT" -o BatchMode=yes \
        -o IdentitiesOnly=yes -o UserKnownHostsFile="$JARVICE_SLURM_SSH_KNOWN_HOSTS" \
        -o StrictHostKeyChecking=yes -o LogLevel=ERROR "$user@$JARVICE_SLURM_CLUSTER_ADDR" "$@"
}

# submit USER NAME SCRIPT-BODY [sbatch options]: prints the job id
submit() {
    local user=$1 name=$2 body=$3
    shift 3
    printf '#!/bin/bash\n%s\n' "$body" | on "$user" sbatch --parsable -J "$name" -o "$S/$name.out" "$@"
}

state() { squeue -h -j "$1" -o %T 2>/dev/null || true; }

# until_true SECONDS CMD...
until_true() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

gone() { [[ -z $(squeue -h -j "$1" -o %i 2>/dev/null) ]]; }
sacct_line() { on jarvice sacct -j "$1" -X -n -P -o JobID,JobName,State,ExitCode,Elapsed; }

token() { scontrol token username="$1" lifespan=600 | sed 's/^SLURM_JWT=//'; }
rest() {
    local user=$1 method=$2 path=$3
    shift 3
    curl -sS --max-time 10 -X "$method" -H "X-SLURM-USER-NAME: $user" \
        -H "X-SLURM-USER-TOKEN: $(token "$user")" -H 'Content-Type: application/json' \
        "$REST$path" "$@"
}

# --- ssh, PATH and a first job
# shellcheck disable=SC2016 # expands on the far side
[[ $(on kirby 'echo $PATH') == "$DSSR_CLUSTER_BIN:"* ]] || fail "ssh PATH lacks $DSSR_CLUSTER_BIN"
ok "ssh login, PATH starts with $DSSR_CLUSTER_BIN"

# shellcheck disable=SC2016
t1=$(submit kirby jarvice_t1 'srun hostname; echo "PATH=$PATH"')
until_true 30 gone "$t1" || fail "t1 ($t1) did not finish"
grep -qx "$(hostname)" "$S/jarvice_t1.out" || fail "t1 output: $(cat "$S/jarvice_t1.out")"
grep -q "^PATH=$DSSR_CLUSTER_BIN:" "$S/jarvice_t1.out" || fail "PATH in job: $(cat "$S/jarvice_t1.out")"
ok "kirby sbatch + srun hostname ran (job $t1), PATH reaches the job"

# --- two one-core jobs of two users at once, visible to jarvice; then only in sacct
k=$(submit kirby jarvice_k 'sleep 8' -n1)
m=$(submit mario jarvice_m 'sleep 8' -n1)
until_true 15 bash -c "[[ \$(squeue -h -j $k,$m -t R -o %i | wc -l) == 2 ]]" || fail "$k and $m not running together"
seen=$(on jarvice "squeue -h -o '%i %u %a' -j $k,$m")
grep -q "^$k kirby acct_kirby$" <<<"$seen" || fail "jarvice squeue: $seen"
grep -q "^$m mario acct_mario$" <<<"$seen" || fail "jarvice squeue: $seen"
ok "kirby's $k and mario's $m run at once; jarvice sees both with their accounts"
until_true 40 bash -c "[[ -z \$(squeue -h -j $k,$m -o %i 2>/dev/null) ]]" || fail "$k/$m still in squeue"
for j in "$k" "$m"; do
    line=$(sacct_line "$j")
    [[ $line == "$j|jarvice_"?"|COMPLETED|0:0|"* ]] || fail "sacct for $j: $line"
done
ok "after MinJobAge both left squeue; jarvice's sacct: $(sacct_line "$k")"

# --- held job released by its owner, cancel by its owner, and by the coordinator jarvice
h=$(submit kirby jarvice_h 'sleep 1' -H)
[[ $(squeue -h -j "$h" -o %r) == JobHeldUser ]] || fail "$h not held: $(squeue -h -j "$h" -o %r)"
on kirby scontrol release "$h"
until_true 30 gone "$h" || fail "released $h did not run"
ok "sbatch -H then owner's scontrol release ($h)"

c=$(submit kirby jarvice_c 'sleep 60')
on kirby scancel "$c"
until_true 20 gone "$c" || fail "scancel $c"
[[ $(sacct_line "$c") == *"|CANCELLED"* ]] || fail "sacct for cancelled $c: $(sacct_line "$c")"
c=$(submit mario jarvice_c2 'sleep 60')
on jarvice scancel "$c"
until_true 20 gone "$c" || fail "jarvice could not cancel mario's $c"
ok "scancel by owner and by coordinator jarvice"

# --- slurmrestd: ping, submit, query, and the slurmdbd side
# The newest API version each Slurm serves; v0.0.38 takes the script beside the job, later
# ones inside it, and report the accounting state as a string or a list.
case $DSSR_CLUSTER_SLURM in
    22.05) API=v0.0.38 ;;
    24.11) API=v0.0.42 ;;
    *) API=v0.0.45 ;;
esac
rest kirby GET "/slurm/$API/ping" | jq -e '.pings[0] | .ping == "UP" or .pinged == "UP" or .responding == true' >/dev/null ||
    fail "REST ping"
job=$(jq -n --arg s "$S" '{name: "jarvice_rest", partition: "debug", nodes: "1", tasks: 1,
    current_working_directory: $s, standard_output: ($s + "/jarvice_rest.out"),
    environment: ["PATH=/usr/bin:/bin"]}')
script=$'#!/bin/bash\nsleep 1\necho rest-ok'
if [[ $API == v0.0.38 ]]; then
    body=$(jq -n --argjson j "$job" --arg s "$script" \
        '{script: $s, job: ($j + {nodes: 1, environment: {PATH: "/usr/bin:/bin"}})}')
else
    body=$(jq -n --argjson j "$job" --arg s "$script" '{job: ($j + {script: $s})}')
fi
r=$(rest kirby POST "/slurm/$API/job/submit" -d "$body")
jr=$(jq -er '.job_id' <<<"$r") || fail "REST submit: $r"
rest kirby GET "/slurm/$API/job/$jr" | jq -e '.jobs[0].user_name == "kirby"' >/dev/null ||
    fail "REST job query $jr"
until_true 30 gone "$jr" || fail "REST job $jr did not finish"
grep -qx rest-ok "$S/jarvice_rest.out" || fail "REST job output"
until_true 10 bash -c "curl -sf -H 'X-SLURM-USER-NAME: jarvice' -H 'X-SLURM-USER-TOKEN: $(token jarvice)' \
    $REST/slurmdb/$API/job/$jr | jq -e '.jobs[0].state.current | tostring | test(\"COMPLETED\")' >/dev/null" ||
    fail "slurmdb job $jr"
ok "slurmrestd $API ping, submit as kirby ($jr), job query, slurmdb query"

# --- restarts
"$HERE/cluster.sh" stop-sshd
! on jarvice true 2>/dev/null || fail "sshd still answers after stop-sshd"
"$HERE/cluster.sh" start-sshd
on jarvice true
l=$(submit kirby jarvice_l 'sleep 20')
until_true 15 bash -c "[[ \$(squeue -h -j $l -o %T) == RUNNING ]]" || fail "$l not running"
"$HERE/cluster.sh" stop-slurmctld
! squeue -h >/dev/null 2>&1 || fail "slurmctld still answers after stop-slurmctld"
"$HERE/cluster.sh" start-slurmctld
[[ $(squeue -h -j "$l" -o %T) == RUNNING ]] || fail "$l lost over slurmctld restart"
r=$(submit kirby jarvice_r 'true')
until_true 30 gone "$r" || fail "job $r after slurmctld restart"
until_true 40 gone "$l" || fail "job $l after slurmctld restart"
[[ $(sacct_line "$l") == *"|COMPLETED|0:0|"* ]] || fail "sacct for $l: $(sacct_line "$l")"
"$HERE/cluster.sh" stop-slurmrestd
! rest kirby GET "/slurm/$API/ping" >/dev/null 2>&1 || fail "slurmrestd still answers"
"$HERE/cluster.sh" start-slurmrestd
rest kirby GET "/slurm/$API/ping" | jq -e '.pings[0] | .ping == "UP" or .pinged == "UP" or .responding == true' >/dev/null ||
    fail "REST ping after restart"
ok "stop/start of sshd, slurmctld and slurmrestd"
echo "all checks passed"
