#!/bin/sh
# Makes the local Debian bookworm base image that Dockerfile.onbuild starts
# FROM (its BASE_IMAGE argument), without a registry: debootstrap a minbase
# rootfs from the mirror apt already uses, slim it the way the official
# bookworm-slim image is slimmed (no docs, man pages, locales, apt lists),
# and import the tarball as $CORRAL_BASE_IMAGE.
#
# The rootfs tarball is cached in $CORRAL_IMAGE_CACHE: debootstrap takes
# minutes, importing seconds. `base.sh --force` redoes both.
set -eu
. "$(dirname -- "$0")/env.sh"

force=
[ "${1:-}" = --force ] && force=1

if [ -z "$force" ] && $CORRAL_ENGINE image inspect "$CORRAL_BASE_IMAGE" >/dev/null 2>&1; then
	say "$CORRAL_BASE_IMAGE already present"
	exit 0
fi

# The mirror apt is configured with (deb822 or one-line format).
mirror() {
	m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)
	[ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
		awk '{for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' | grep -v security | head -n1)
	echo "${m:-http://deb.debian.org/debian}"
}

# Slims the rootfs like Debian's bookworm-slim image: dpkg keeps no docs,
# man pages or foreign locales from now on (so the language packages that
# runtime images install stay small too), apt keeps no caches, and what
# debootstrap already unpacked of those is removed.
slim() {
	r=$1
	mkdir -p "$r/etc/dpkg/dpkg.cfg.d" "$r/etc/apt/apt.conf.d"
	cat >"$r/etc/dpkg/dpkg.cfg.d/corral-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
	cat >"$r/etc/apt/apt.conf.d/corral-slim" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Binary::apt::APT::Keep-Downloaded-Packages "false";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
CFG
	find "$r/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
	find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$r/usr/share/man/"* "$r/usr/share/info/"* "$r/usr/share/lintian" \
		"$r/var/cache/apt/"*.bin "$r/var/cache/apt/archives/"*.deb "$r/var/lib/apt/lists/"* \
		"$r/var/log/"*.log "$r/var/log/apt/"*
	find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
}

tarball="$CORRAL_IMAGE_CACHE/debian-bookworm-minbase.tar"
if [ -n "$force" ] || [ ! -s "$tarball" ]; then
	command -v debootstrap >/dev/null || die "debootstrap is not installed (run images/deps.sh)"
	[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
	mkdir -p "$CORRAL_IMAGE_CACHE"
	root="$CORRAL_IMAGE_CACHE/rootfs.$$"
	trap 'rm -rf "$root"' EXIT INT TERM
	url=$(mirror)
	say "debootstrap bookworm from $url (takes minutes)"
	debootstrap --variant=minbase bookworm "$root" "$url" >"$CORRAL_IMAGE_CACHE/debootstrap.log" 2>&1 ||
		die "debootstrap failed, see $CORRAL_IMAGE_CACHE/debootstrap.log"
	slim "$root"
	tar --numeric-owner -C "$root" -cf "$tarball.tmp" . || die "tar of the rootfs failed"
	mv "$tarball.tmp" "$tarball"
	rm -rf "$root"
	trap - EXIT INT TERM
fi

say "importing $tarball as $CORRAL_BASE_IMAGE"
$CORRAL_ENGINE import $( [ "$CORRAL_ENGINE" = podman ] && echo --quiet ) --change 'CMD ["/bin/bash"]' "$tarball" "$CORRAL_BASE_IMAGE" >/dev/null ||
	die "import of $tarball failed"
say "$CORRAL_BASE_IMAGE: $($CORRAL_ENGINE image inspect --format '{{.Size}}' "$CORRAL_BASE_IMAGE") bytes"
