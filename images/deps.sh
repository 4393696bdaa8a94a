#!/bin/sh
# Installs, from Debian's packages, what building and testing the images
# needs: podman (or an existing docker), runc, debootstrap, and the Python
# modules the chart tests use. Only what is missing, so it is quick when
# nothing is. Kept apart from stack/deps.sh: `make test` does not need it.
set -e
pkgs="podman buildah runc debootstrap uidmap fuse-overlayfs slirp4netns
containernetworking-plugins netavark aardvark-dns unzip python3-jsonschema
python3-yaml python3-pytest python3-requests python3-msgpack"
if command -v docker >/dev/null 2>&1 && [ "${CORRAL_ENGINE:-}" = docker ]; then
	pkgs="debootstrap unzip python3-jsonschema python3-yaml python3-pytest python3-requests python3-msgpack"
fi
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
echo "images/deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then echo "images/deps: run as root (apt-get)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
