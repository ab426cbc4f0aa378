#!/usr/bin/env bash
# Build DSSR's image with this machine's pip settings, which enter the build only:
#
#   deploy/build-image.sh -t dssr:0.1.0 [--build-arg BASE=localhost/dssr-base:bookworm] [--network=host]
#
# Every option is passed to `podman build` (CONTAINER_ENGINE=docker for docker). The merged
# pip configuration (`pip config list`: files and PIP_* variables) becomes the build secret
# `pip.conf`, the CA bundle pip trusts the secret `pip-ca`, and the local paths that
# configuration names (file:// indexes, find-links folders, constraint files) are mounted
# read-only for the build (podman only). None of them is written into an image layer.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${CONTAINER_ENGINE:-podman}
PYTHON=${PYTHON:-python3}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Writes $WORK/pip.conf and prints the local paths it names, one a line.
"$PYTHON" - "$WORK/pip.conf" >"$WORK/paths" <<'EOF'
import configparser, os, re, subprocess, sys

listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                         text=True).stdout
merged = {}
for line in listing.splitlines():
    match = re.match(r"^([^.]*)\.([A-Za-z0-9_-]+)='(.*)'$", line)
    if match and match[1] in ("global", "install", ":env:"):
        merged[match[2]] = match[3]      # ':env:' (PIP_*) is listed last and wins, as in pip
merged.pop("cert", None)                 # the CA bundle travels as the pip-ca secret
config = configparser.ConfigParser(interpolation=None)
config["global"] = merged
with open(sys.argv[1], "w") as handle:
    config.write(handle)
for key in ("index-url", "extra-index-url", "find-links", "constraint", "requirement"):
    for word in merged.get(key, "").split():
        path = word[len("file://"):] if word.startswith("file://") else word
        if not path.startswith("/"):
            continue
        path = path.rstrip("/")
        if os.path.basename(path) == "simple":  # an index's pages link to ../../files
            path = os.path.dirname(path)
        if os.path.exists(path):
            print(path)
EOF

CA=${PIP_CERT:-$("$PYTHON" -m pip config get global.cert 2>/dev/null || true)}
CA=${CA:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}

args=(--secret "id=pip.conf,src=$WORK/pip.conf")
[ -s "$CA" ] && args+=(--secret "id=pip-ca,src=$CA")
if [ "$ENGINE" = podman ]; then
    while read -r path; do
        args+=(--volume "$path:$path:ro")
    done < <(sort -u "$WORK/paths")
elif [ -s "$WORK/paths" ]; then
    echo "build-image: $ENGINE cannot mount build volumes; pip runs without $(tr '\n' ' ' <"$WORK/paths")" >&2
fi

"$ENGINE" build "${args[@]}" --file Containerfile "$@" .
