# --- Body of an upstream-like JARVICE app job (dssr_singularity's job.sh) --------------------
# dssr_singularity.executor.job_template puts the job's facts, the executor's export block
# and `job_cores=<n>` before this body. One copy runs per node; rank 0 (PROCESS_PROCID 0 or
# unset) prints JARVICE_CMD_SUCCESS when the command succeeded.
# Never `set -x` here: the export block holds registry credentials.
set -u

rank="${PROCESS_PROCID:-0}"
say() {
    if [ "$SV" = "true" ]; then echo "[dssr-singularity rank $rank] $*"; fi
}
fail() {
    echo "[dssr-singularity rank $rank] ERROR: $*" >&2
    exit 1
}

# Proxies, for the pulls and for the app.
if [ -n "$SCHTTP_PROXY" ]; then export http_proxy="$SCHTTP_PROXY" HTTP_PROXY="$SCHTTP_PROXY"; fi
if [ -n "$SCHTTPS_PROXY" ]; then export https_proxy="$SCHTTPS_PROXY" HTTPS_PROXY="$SCHTTPS_PROXY"; fi
if [ -n "$SCNO_PROXY" ]; then export no_proxy="$SCNO_PROXY" NO_PROXY="$SCNO_PROXY"; fi

# Scratch: the job's data directory, bound into the container at the same path.
scratch="${JARVICE_JOB_SCRATCH_DIR:-$HOME/}"
scratch="${scratch%/}"
scratch="${scratch:-/}"
mkdir -p "$scratch" || fail "cannot create the scratch directory $scratch"
binds=(-B "$scratch")
if [ -n "$JARVICE_JOB_GLOBAL_SCRATCH_DIR" ]; then
    binds+=(-B "${JARVICE_JOB_GLOBAL_SCRATCH_DIR%/}")
fi

# Node-local work directory for the SIF files and the overlay, removed at the end.
tmp_root="${JARVICE_SINGULARITY_TMPDIR:-/tmp}"
tmp_root="${tmp_root%/}"
mkdir -p "$tmp_root" || fail "cannot create $tmp_root (JARVICE_SINGULARITY_TMPDIR)"
work=$(mktemp -d "${tmp_root:-/tmp}/dssr-singularity.XXXXXXXX") || fail "cannot create a work directory in $tmp_root"
trap 'rm -rf "$work"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
cache="${tmp_root:-/tmp}/singularity-cache-${JOB_LOCAL_USER:-$(id -un)}"
export SINGULARITY_TMPDIR="$work" APPTAINER_TMPDIR="$work"
export SINGULARITY_CACHEDIR="$cache" APPTAINER_CACHEDIR="$cache"
mkdir -p "$cache" || fail "cannot create the image cache $cache"

# pull SIF URL BASE64_USER BASE64_PASSWORD: the credentials reach only this one command. One pull
# at a time per cache: Apptainer's cache is not safe for concurrent pulls (two jobs of a user
# starting together on a node fail with "unexpected end of JSON input").
pull() {
    local user password
    user=$(printf '%s' "$3" | base64 -d) || return 1
    password=$(printf '%s' "$4" | base64 -d) || return 1
    if [ -n "$user" ]; then
        SINGULARITY_DOCKER_USERNAME="$user" SINGULARITY_DOCKER_PASSWORD="$password" \
        APPTAINER_DOCKER_USERNAME="$user" APPTAINER_DOCKER_PASSWORD="$password" \
            flock "$cache/.dssr-pull.lock" singularity "$SV_FLAG" pull --force "$1" "$2"
    else
        flock "$cache/.dssr-pull.lock" singularity "$SV_FLAG" pull --force "$1" "$2"
    fi
}

say "pulling the init image $JARVICE_INIT_IMAGE"
pull "$work/init.sif" "$JARVICE_INIT_IMAGE" "$JARVICE_INIT_DOCKER_USERNAME" \
    "$JARVICE_INIT_DOCKER_PASSWORD" || fail "cannot pull the init image $JARVICE_INIT_IMAGE"
say "pulling the app image $JARVICE_APP_IMAGE"
pull "$work/app.sif" "$JARVICE_APP_IMAGE" "$JARVICE_DOCKER_USERNAME" \
    "$JARVICE_DOCKER_PASSWORD" || fail "cannot pull the app image $JARVICE_APP_IMAGE"
# The app must not see the credentials (Singularity passes the environment in).
unset JARVICE_INIT_DOCKER_USERNAME JARVICE_INIT_DOCKER_PASSWORD \
    JARVICE_DOCKER_USERNAME JARVICE_DOCKER_PASSWORD

# A writable layer: an ext3 overlay of JARVICE_SINGULARITY_OVERLAY_SIZE MB, or a tmpfs when 0.
if [ "$JARVICE_SINGULARITY_OVERLAY_SIZE" -gt 0 ]; then
    say "creating a ${JARVICE_SINGULARITY_OVERLAY_SIZE} MB overlay"
    singularity "$SV_FLAG" overlay create --size "$JARVICE_SINGULARITY_OVERLAY_SIZE" \
        "$work/overlay.img" || fail "cannot create the overlay"
    writable=(--overlay "$work/overlay.img")
else
    writable=(--writable-tmpfs)
fi

say "running: $JARVICE_CMD"
singularity "$SV_FLAG" exec "${writable[@]}" "${binds[@]}" \
    --env "JARVICE_CPU_CORES=$job_cores" --env "JARVICE_JOB_RANK=$rank" \
    --pwd "$scratch" "$work/app.sif" /bin/sh -c "$JARVICE_CMD"
rc=$?
if [ "$rc" -ne 0 ]; then
    echo "[dssr-singularity rank $rank] JARVICE_CMD exited with code $rc" >&2
    exit "$rc"
fi
if [ "$rank" = "0" ]; then
    echo "JARVICE_CMD_SUCCESS"
fi
exit 0
