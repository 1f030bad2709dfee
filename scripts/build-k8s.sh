#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries (kube-apiserver, kube-controller-manager, kube-scheduler) and kwok
# from their published Go modules, for the Kubernetes integration tests (test/env/kube-cluster.ts).
#
#   scripts/build-k8s.sh            # prints progress on stderr; the last stdout line is the bin directory
#
# Output: $CACHE/k8s-<version>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kwok}, where CACHE is
# $TWISTER2_TEST_CACHE or ~/.cache/twister2-test. Idempotent: when already built it only prints the bin directory.
# Concurrent callers serialise on a lock directory; the build goes to a temporary directory renamed into place,
# so a half-built directory is never seen. Go modules and the build cache live under $CACHE/go (shared with
# other builds). A cold build takes tens of minutes on 2 cores; a rebuild with a warm Go cache takes a minute or two.
#
# Environment: K8S_VERSION (default 1.33.13), KWOK_VERSION (default v0.7.0), GO (default /usr/local/go/bin/go).
set -euo pipefail
# shellcheck source=lib/cached-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cached-build.sh"

K8S_VERSION="${K8S_VERSION:-1.33.13}"
K8S_VERSION="${K8S_VERSION#v}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
DEST="$CACHE/k8s-$K8S_VERSION"
BIN="$DEST/bin"
MARKER="$DEST/.twister2-ready"
WANT="kubernetes=v$K8S_VERSION kwok=$KWOK_VERSION"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kwok)

built() {
  [[ -f "$MARKER" && "$(cat "$MARKER")" == "$WANT" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

cached_build_begin build-k8s 90
log "$("$GO" version); building Kubernetes v$K8S_VERSION and kwok $KWOK_VERSION into $TMP (log: stderr)"

# k8s.io/kubernetes replaces every staging module (k8s.io/api, k8s.io/client-go, ...) with a local path, so it cannot
# be built as a dependency as it is. A wrapper module requires it and replaces each staging module with its
# published v0.Y.Z instead; the list of staging modules comes from the downloaded go.mod itself.
gomod="$("$GO" mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -f "$gomod" ]] || { log "could not download k8s.io/kubernetes@v$K8S_VERSION"; exit 1; }
staging="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$gomod")"
[[ -n "$staging" ]] || { log "no staging replacements found in $gomod"; exit 1; }
minor="$(cut -d. -f2 <<<"$K8S_VERSION")"
patch="$(cut -d. -f3 <<<"$K8S_VERSION")"
{
  echo "module twister2.test/k8s-build"
  echo
  echo "go $(sed -n 's/^go \(.*\)/\1/p' "$gomod")"
  echo
  echo "require k8s.io/kubernetes v$K8S_VERSION"
  echo
  echo "replace ("
  while read -r m; do echo "	$m => $m v0.$minor.$patch"; done <<<"$staging"
  echo ")"
} >"$TMP/wrapper/go.mod"

pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
ldflags+=" -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"

t0=$SECONDS
# All three in one invocation, so shared packages compile once.
(cd "$TMP/wrapper" && "$GO" build -mod=mod -trimpath -ldflags "$ldflags" -o "$TMP/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler) >&2
t1=$SECONDS
log "kubernetes binaries built in $((t1 - t0)) s"

# kwok has no replace directives: build it as published, in its own module graph.
GOBIN="$TMP/bin" "$GO" install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
t2=$SECONDS
log "kwok built in $((t2 - t1)) s"

for b in "${BINARIES[@]}"; do [[ -x "$TMP/bin/$b" ]] || { log "missing $b after the build"; exit 1; }; done
echo "$(date -u +%FT%TZ) kubernetes=$((t1 - t0))s kwok=$((t2 - t1))s" >>"$TMP/build-times.txt"
cached_build_finish
