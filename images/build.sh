#!/bin/sh
# build.sh — builds corral's images, the same way for CI and a developer.
#
#   images/build.sh [all]          base (if missing), onbuild, every runtime
#                                  that has a Dockerfile and a runtime.sh,
#                                  and the gateway when its sources exist
#   images/build.sh onbuild        only the onbuild base
#   images/build.sh runtime LANG…  runtime images (the onbuild base must exist)
#   images/build.sh gateway        the gateway image
#   images/build.sh sizes          print the sizes of what is built
#
# Images are tagged $CORRAL_TAG (default dev): corral/onbuild,
# corral/runtime-LANG, corral/gateway. The engine is podman, else docker
# (env.sh); podman builds use the docker format so ONBUILD survives.
# CORRAL_REGISTRY=registry.example.com/team (optional) also tags each image
# with that prefix, ready for `podman push`. CORRAL_BUILD_FLAGS adds flags
# to every build (e.g. --no-cache, --pull=never).
set -eu
. "$(dirname -- "$0")/env.sh"
cd "$repo_dir"

# build TAG DOCKERFILE CONTEXT [build args...]
build() {
	tag=$1 file=$2 ctx=$3; shift 3
	say "building $tag"
	start=$(date +%s)
	# shellcheck disable=SC2046 # build_format is one or two words on purpose
	log="$CORRAL_IMAGE_CACHE/build-$(echo "${tag%:*}" | tr / -).log"
	mkdir -p "$CORRAL_IMAGE_CACHE"
	# shellcheck disable=SC2086 # CORRAL_BUILD_FLAGS is a list of words
	if ! $CORRAL_ENGINE build $(build_format) ${CORRAL_BUILD_FLAGS:-} -f "$file" -t "$tag" "$@" "$ctx" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "building $tag from $file failed (whole output: $log)"
	fi
	say "built $tag in $(( $(date +%s) - start )) s, $(size_of "$tag")"
	if [ -n "${CORRAL_REGISTRY:-}" ]; then
		$CORRAL_ENGINE tag "$tag" "$CORRAL_REGISTRY/${tag#corral/}" ||
			die "tagging $tag for $CORRAL_REGISTRY failed"
	fi
}

size_of() {
	b=$($CORRAL_ENGINE image inspect --format '{{.Size}}' "$1" 2>/dev/null) || { echo "absent"; return; }
	echo "$((b / 1000000)) MB ($b bytes)"
}

onbuild() {
	sh "$images_dir/base.sh"
	build "corral/onbuild:$CORRAL_TAG" Dockerfile.onbuild . \
		--build-arg "BASE_IMAGE=$CORRAL_BASE_IMAGE"
}

runtime() {
	lang=$1 dir=runtimes/$1
	[ -f "$dir/Dockerfile" ] || die "$dir/Dockerfile does not exist"
	build "corral/runtime-$lang:$CORRAL_TAG" "$dir/Dockerfile" "$dir" \
		--build-arg "BASE=corral/onbuild:$CORRAL_TAG"
}

# Runtimes that can be built: a Dockerfile and a runtime.sh; only those
# named in CORRAL_IMAGE_RUNTIMES when it is set (CI builds one).
runtimes() {
	for d in runtimes/*/; do
		d=${d%/}
		[ -f "$d/Dockerfile" ] && [ -f "$d/runtime.sh" ] || continue
		case " ${CORRAL_IMAGE_RUNTIMES:-${d#runtimes/}} " in
		*" ${d#runtimes/} "*) echo "${d#runtimes/}" ;;
		esac
	done
	return 0
}

gateway() {
	ls gateway/*.c >/dev/null 2>&1 || die "gateway/ has no sources yet"
	sh "$images_dir/base.sh"
	build "corral/gateway:$CORRAL_TAG" gateway/Dockerfile . \
		--build-arg "BASE_IMAGE=$CORRAL_BASE_IMAGE"
}

sizes() {
	for img in "corral/debian:bookworm" "corral/onbuild:$CORRAL_TAG" \
		$(runtimes | sed "s|.*|corral/runtime-&:$CORRAL_TAG|") "corral/gateway:$CORRAL_TAG"; do
		printf '%-32s %s\n' "$img" "$(size_of "$img")"
	done
}

what=${1:-all}
[ $# -gt 0 ] && shift
case "$what" in
all)
	onbuild
	for l in $(runtimes); do runtime "$l"; done
	if ls gateway/*.c >/dev/null 2>&1; then gateway; else say "gateway/ has no sources yet: skipping its image"; fi
	sizes ;;
onbuild) onbuild ;;
runtime) [ $# -gt 0 ] || die "usage: build.sh runtime LANG..."
	for l in "$@"; do runtime "$l"; done ;;
gateway) gateway ;;
sizes) sizes ;;
*) die "unknown target '$what' (all, onbuild, runtime LANG..., gateway, sizes)" ;;
esac
