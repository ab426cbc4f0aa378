#!/usr/bin/env bash
# podman for the image test, from Debian's packages: installs podman, runc and debootstrap when
# missing (as root; CI machines start fresh) and prints the CONTAINERS_CONF to use, a file of
# this project, so /etc/containers is left as it is:
#
#   export CONTAINERS_CONF=$(tests/image/setup-podman.sh)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PACKAGES=(podman runc debootstrap)

missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    log=$(mktemp)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}" \
        >"$log" 2>&1 || { tail -n 30 "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
fi
echo "$HERE/containers.conf"
