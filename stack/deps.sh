#!/bin/sh
# Installs, from Debian's packages, what corral needs to build, run and
# test; only what is missing, so that it is quick when nothing is.
set -e
# libmbedtls-dev: HMAC-SHA256 of --secret-file (libmbedcrypto); nng itself
# depends on it already, so it costs nothing more.
# libmicrohttpd-dev: the gateway's HTTP server (gateway/gw_http.c).
pkgs="make gcc libc6-dev pkg-config libnng-dev libmbedtls-dev libmsgpack-dev libjansson-dev
libmicrohttpd-dev
libseccomp-dev s6 execline python3 python3-pytest python3-msgpack
python3-requests bash python3 nodejs gcc procps iproute2 curl wrk ruby
php-cli"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then echo "deps: run as root (apt-get)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
