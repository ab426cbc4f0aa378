#!/usr/bin/env bash
# The container tests' two images, built offline with podman and pushed with credentials to the
# test cluster's registry (cluster.sh up starts it):
#
#   eval "$(tests/cluster/cluster.sh env)"; tests/cluster/images.sh
#
# prints `export` lines: DSSR_CLUSTER_APP_IMAGE and DSSR_CLUSTER_INIT_IMAGE (docker:// references
# without the scheme). Neither image comes from a registry: each is a busybox root (Debian's
# busybox-static) with a few files, imported by `podman import`.
#   app   /opt/dssr-app: a small web app (busybox httpd on $JARVICE_SERVICE_PORT) for interactive
#         jobs, `dssr-app-web`, and a marker file the tests read
#   init  a STAND-IN for JARVICE's init image (JARVICE's holds its job-start tools): a busybox
#         root with /etc/JARVICE/dssr-init-stand-in, enough for the pull that job.sh does
# Idempotent: an image the registry has is not pushed again. As root (podman, apt).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${DSSR_CLUSTER_REGISTRY:?run: eval \"\$(tests/cluster/cluster.sh env)\" first}"
: "${DSSR_CLUSTER_REGISTRY_USER:?}" "${DSSR_CLUSTER_REGISTRY_PASSWORD:?}" "${DSSR_CLUSTER_REGISTRY_CA:?}"
CONTAINERS_CONF=$("$HERE/../image/setup-podman.sh")
export CONTAINERS_CONF
if ! dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 busybox-static >/dev/null
fi
# A version in the tag: a change to what the images hold pushes new ones.
VERSION=1
APP=$DSSR_CLUSTER_REGISTRY/dssr-test/app:$VERSION
INIT=$DSSR_CLUSTER_REGISTRY/jarvice-system/images/initv2:dssr-test-$VERSION

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
install -d "$work/certs"
cp "$DSSR_CLUSTER_REGISTRY_CA" "$work/certs/ca.crt"

in_registry() {
    local name=${1#*/} tag=${1##*:}
    curl -sf -o /dev/null --cacert "$DSSR_CLUSTER_REGISTRY_CA" \
        -u "$DSSR_CLUSTER_REGISTRY_USER:$DSSR_CLUSTER_REGISTRY_PASSWORD" \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "https://$DSSR_CLUSTER_REGISTRY/v2/${name%:*}/manifests/$tag"
}

# busybox_root DIR: busybox and its applets as links, /tmp, and the files every image has
busybox_root() {
    local root=$1 applet
    install -d "$root/bin" "$root/usr/bin" "$root/etc" "$root/opt" "$root/root" "$root/home"
    install -d -m 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
}

# build_push REF ROOT CMD: import ROOT as REF and push it with the registry's credentials
build_push() {
    local ref=$1 root=$2 cmd=$3
    tar -C "$root" --owner=0 --group=0 -cf "$work/root.tar" .
    podman import --change "CMD [\"$cmd\"]" --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        "$work/root.tar" "$ref" >/dev/null
    podman push --creds "$DSSR_CLUSTER_REGISTRY_USER:$DSSR_CLUSTER_REGISTRY_PASSWORD" \
        --cert-dir "$work/certs" "$ref" "docker://$ref" >"$work/push.log" 2>&1 ||
        { cat "$work/push.log" >&2; exit 1; }
}

if ! in_registry "$APP"; then
    root=$work/app
    busybox_root "$root"
    install -d "$root/opt/dssr-app/www" "$root/usr/local/bin"
    echo "dssr test app $VERSION" >"$root/opt/dssr-app/marker"
    cat >"$root/opt/dssr-app/www/index.html" <<HTML
<!doctype html>
<html><head><title>DSSR container app</title></head>
<body style="background: rgb(60, 159, 42)"><h1 id="app">served from inside the container</h1></body></html>
HTML
    cat >"$root/usr/local/bin/dssr-app-web" <<'SH'
#!/bin/sh
# The app image's web app: busybox httpd on the job's service port, in the foreground.
exec httpd -f -p "${JARVICE_SERVICE_PORT:-5902}" -h /opt/dssr-app/www
SH
    chmod 0755 "$root/usr/local/bin/dssr-app-web"
    build_push "$APP" "$root" /bin/sh
fi
if ! in_registry "$INIT"; then
    root=$work/init
    busybox_root "$root"
    install -d "$root/etc/JARVICE"
    echo "a stand-in for JARVICE's init image, made by DSSR's tests/cluster/images.sh" \
        >"$root/etc/JARVICE/dssr-init-stand-in"
    build_push "$INIT" "$root" /bin/sh
fi
printf 'export DSSR_CLUSTER_APP_IMAGE=%q\nexport DSSR_CLUSTER_INIT_IMAGE=%q\n' "$APP" "$INIT"
