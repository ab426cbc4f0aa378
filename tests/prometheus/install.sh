#!/bin/bash
# Installs Debian's Prometheus (prometheus and promtool, 2.42 on Debian 12) when it is missing,
# for tests/dssr_slurm/test_prometheus.py, as tests/cluster/cluster.sh installs Slurm's packages.
# Idempotent. The package's own Prometheus (on :9090) is not started: the tests start theirs
# on a free loopback port.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    exit 0
fi
guard=''
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    guard=1
fi
rc=0
out=$(mktemp)
{
    apt-get -o DPkg::Lock::Timeout=900 update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
            --no-install-recommends -o Dpkg::Use-Pty=0 prometheus
} >"$out" 2>&1 || rc=$?
[[ -z $guard ]] || rm -f /usr/sbin/policy-rc.d
((rc == 0)) || cat "$out" >&2
rm -f "$out"
exit "$rc"
