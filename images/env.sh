# Sourced by every image script: one place that decides which engine builds
# and runs the images and with what configuration, so that CI and a
# developer get the same behaviour.
#
# CORRAL_ENGINE  podman or docker; default: podman if installed, else docker.
# CORRAL_IMAGE_CACHE  where the debootstrapped rootfs tarball is kept
#                     (default /var/tmp/corral-images).
# CORRAL_BASE_IMAGE  the local Debian base (default corral/debian:bookworm).
# CORRAL_TAG  tag for the images built here (default dev).

images_dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
case "$images_dir" in */tests/images) images_dir=${images_dir%/tests/images}/images ;; esac
repo_dir=$(dirname -- "$images_dir")

export CONTAINERS_CONF="$images_dir/containers.conf"
if [ -z "${CORRAL_ENGINE:-}" ]; then
	if command -v podman >/dev/null 2>&1; then CORRAL_ENGINE=podman
	elif command -v docker >/dev/null 2>&1; then CORRAL_ENGINE=docker
	else echo "images: neither podman nor docker is installed (run images/deps.sh)" >&2; exit 1
	fi
fi
CORRAL_IMAGE_CACHE=${CORRAL_IMAGE_CACHE:-/var/tmp/corral-images}
CORRAL_BASE_IMAGE=${CORRAL_BASE_IMAGE:-corral/debian:bookworm}
CORRAL_TAG=${CORRAL_TAG:-dev}

# The engine's build flags: podman defaults to OCI format, which silently
# drops ONBUILD; docker format keeps it.
build_format() {
	[ "$CORRAL_ENGINE" = podman ] && echo "--format docker"
	return 0
}

say() { echo "images: $*" >&2; }
die() { echo "images: error: $*" >&2; exit 1; }
