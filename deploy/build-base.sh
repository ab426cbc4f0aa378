#!/usr/bin/env bash
# Build a Debian 12 base image with Python 3.11 without any container registry: debootstrap
# from the Debian mirror apt already uses, then `podman import`. For offline sites and for the
# image test (no registry is reachable from CI). Run as root.
#
#   deploy/build-base.sh [IMAGE]      IMAGE defaults to localhost/dssr-base:bookworm
#
# A second run is a no-op while the image exists and was built from the same recipe (suite,
# packages, mirror); DSSR_BASE_REBUILD=1 forces a rebuild (for instance to take new security
# updates). Settings: DSSR_BASE_MIRROR, DSSR_BASE_SECURITY_MIRROR (default: read from
# /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list).
set -euo pipefail

IMAGE=${1:-localhost/dssr-base:bookworm}
SUITE=bookworm
# python3 + python3-venv: Debian's Python 3.11 and the ensurepip wheels the venv needs;
# ca-certificates: the chart sets REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt;
# openssh-client: `ssh`, which carries the proxy of interactive jobs (docs/interactive-jobs.md).
PACKAGES=python3,python3-venv,ca-certificates,openssh-client

# The first "URIs:" (deb822) or "deb" (one-line) entry whose suites match, from apt's sources.
apt_mirror() {
    local wanted=$1 file
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -e "$file" ] || continue
        awk -v wanted="$wanted" '
            /^[[:space:]]*$/ { if (uri != "" && match_suite) { print uri; exit } uri = ""; match_suite = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == wanted) match_suite = 1 }
            END { if (uri != "" && match_suite) print uri }' "$file" | head -n 1
    done
    if [ -e /etc/apt/sources.list ]; then
        awk -v wanted="$wanted" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == wanted) { for (j = 2; j < i; j++) if ($j !~ /^\[/) uri = $j; print uri; exit } }' \
            /etc/apt/sources.list
    fi
}

MIRROR=${DSSR_BASE_MIRROR:-$(apt_mirror "$SUITE" | head -n 1)}
SECURITY_MIRROR=${DSSR_BASE_SECURITY_MIRROR:-$(apt_mirror "$SUITE-security" | head -n 1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
RECIPE=$(printf '%s\n' "$SUITE" "$PACKAGES" "$MIRROR" "$SECURITY_MIRROR" "$(sha256sum <"$0")" | sha256sum | cut -c1-16)

if [ "${DSSR_BASE_REBUILD:-0}" != 1 ] && podman image exists "$IMAGE" \
    && [ "$(podman image inspect --format '{{ index .Labels "org.dssr.base.recipe" }}' "$IMAGE")" = "$RECIPE" ]; then
    echo "build-base: $IMAGE is up to date (recipe $RECIPE)"
    exit 0
fi

ROOTFS=$(mktemp -d /var/tmp/dssr-base.XXXXXX)
cleanup() {
    umount "$ROOTFS/proc" 2>/dev/null || true
    rm -rf --one-file-system "$ROOTFS" "$ROOTFS.log"
}
trap cleanup EXIT

LOG=$ROOTFS.log
# Quiet unless a step fails; then the end of its output.
quietly() {
    "$@" >"$LOG" 2>&1 || { status=$?; tail -n 30 "$LOG" >&2; exit "$status"; }
}

echo "build-base: debootstrap $SUITE from $MIRROR into $ROOTFS"
quietly debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR"

# The image's own apt sources, so that `apt-get upgrade` in the image (and here) takes the
# point releases and security updates debootstrap's single suite does not have.
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
mount -t proc proc "$ROOTFS/proc"
quietly chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c 'apt-get -o APT::Sandbox::User=root -q update && apt-get -o APT::Sandbox::User=root -q -y upgrade && apt-get clean'
umount "$ROOTFS/proc"

# What a container never needs: apt's lists and caches, documentation, locales.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/cache/debconf/*-old \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*.log "$ROOTFS"/tmp/* "$ROOTFS"/root/.cache
: >"$ROOTFS/etc/machine-id"

tar --numeric-owner --xattrs -C "$ROOTFS" -c . | podman import --quiet \
    --change "LABEL org.dssr.base.recipe=$RECIPE" \
    --change "LABEL org.opencontainers.image.description=Debian $SUITE minbase with Python 3 (debootstrap)" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    - "$IMAGE" >/dev/null
echo "build-base: imported $IMAGE (recipe $RECIPE, $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
