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

K8S_VERSION="${K8S_VERSION:-1.33.13}"
K8S_VERSION="${K8S_VERSION#v}"
KWOK_VERSION="${KWOK_VERSION:-v0.7.0}"
CACHE="${TWISTER2_TEST_CACHE:-$HOME/.cache/twister2-test}"
DEST="$CACHE/k8s-$K8S_VERSION"
BIN="$DEST/bin"
MARKER="$DEST/.twister2-ready"
WANT="kubernetes=v$K8S_VERSION kwok=$KWOK_VERSION"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kwok)

if [[ -z "${GO:-}" ]]; then
  if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO="$(command -v go || true)"; fi
fi

built() {
  [[ -f "$MARKER" && "$(cat "$MARKER")" == "$WANT" ]] || return 1
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}

if built; then
  echo "$BIN"
  exit 0
fi

log() { echo "build-k8s: $*" >&2; }

[[ -n "$GO" && -x "$GO" ]] || { log "no Go toolchain found (set GO=/path/to/go)"; exit 1; }

mkdir -p "$CACHE"
LOCK="$DEST.lock"
TMP=""
HAVE_LOCK=0
cleanup() {
  if [[ -n "$TMP" ]]; then rm -rf "$TMP"; fi
  if [[ "$HAVE_LOCK" == 1 ]]; then rm -rf "$LOCK"; fi
}
trap cleanup EXIT

# Take the lock; wait while another live process holds it, take over a lock whose owner died.
deadline=$((SECONDS + 90 * 60))
while true; do
  if mkdir "$LOCK" 2>/dev/null; then
    HAVE_LOCK=1
    echo $$ >"$LOCK/pid"
    break
  fi
  owner="$(cat "$LOCK/pid" 2>/dev/null || true)"
  if [[ -n "$owner" ]] && ! kill -0 "$owner" 2>/dev/null; then
    stale="$LOCK.stale-$$"
    if mv "$LOCK" "$stale" 2>/dev/null; then rm -rf "$stale"; fi
    continue
  fi
  if [[ -z "$owner" && -d "$LOCK" ]] && (($(date +%s) - $(stat -c %Y "$LOCK" 2>/dev/null || date +%s) > 60)); then
    stale="$LOCK.stale-$$"
    if mv "$LOCK" "$stale" 2>/dev/null; then rm -rf "$stale"; fi
    continue
  fi
  if built; then
    echo "$BIN"
    exit 0
  fi
  ((SECONDS < deadline)) || { log "timed out waiting for the build lock $LOCK (held by PID ${owner:-?})"; exit 1; }
  sleep 5
done

# Someone else may have finished while we waited for the lock.
if built; then
  echo "$BIN"
  exit 0
fi

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-modcacherw
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build"
mkdir -p "$GOMODCACHE" "$GOCACHE"

TMP="$(mktemp -d "$DEST.tmp-XXXXXX")"
chmod 755 "$TMP"
mkdir -p "$TMP/bin" "$TMP/wrapper"
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
cp "$TMP/wrapper/go.mod" "$TMP/wrapper.go.mod"
echo "$(date -u +%FT%TZ) kubernetes=$((t1 - t0))s kwok=$((t2 - t1))s" >>"$TMP/build-times.txt"
echo "$WANT" >"$TMP/.twister2-ready"
rm -rf "$TMP/wrapper"

# Replace an incomplete or outdated directory, then move ours into place in one rename.
if [[ -e "$DEST" ]]; then
  old="$DEST.old-$$"
  mv "$DEST" "$old"
  rm -rf "$old"
fi
mv "$TMP" "$DEST"
TMP=""
log "done: $BIN"
echo "$BIN"
