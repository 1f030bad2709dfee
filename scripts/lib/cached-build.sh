# shellcheck shell=bash
# Shared by scripts/build-k8s.sh and scripts/build-nomad.sh: a build cached in one directory under
# $TWISTER2_TEST_CACHE (default ~/.cache/twister2-test), marked ready by a file, built by one caller at a time.
#
# The sourcing script (with `set -euo pipefail`) sets DEST (the cache directory for this build), BIN (what it
# prints when done: the last stdout line), MARKER (the ready file, "$DEST/.twister2-ready") and WANT (its content),
# defines built() (0 when $DEST is complete and current), then:
#
#   cached_build_begin NAME LOCK_WAIT_MINUTES   # prints $BIN and exits 0 when built; else takes the lock, exports
#                                               # the Go environment and makes $TMP (with bin/ and wrapper/)
#   ...builds into $TMP/bin, with the wrapper module in $TMP/wrapper...
#   cached_build_finish                         # marks $TMP ready, renames it to $DEST, prints $BIN
#
# Concurrent callers serialise on the lock directory $DEST.lock (its owner's PID inside; a lock whose owner died,
# or one left without a PID for over a minute, is taken over); the build goes to a temporary directory renamed
# into place, so a half-built directory is never seen. Go modules and the build cache live under $CACHE/go,
# shared by every build.

CACHE="${TWISTER2_TEST_CACHE:-$HOME/.cache/twister2-test}"
CACHED_BUILD_NAME="${CACHED_BUILD_NAME:-build}"
TMP=""
HAVE_LOCK=0

if [[ -z "${GO:-}" ]]; then
  if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO="$(command -v go || true)"; fi
fi

log() { echo "$CACHED_BUILD_NAME: $*" >&2; }

cached_build_cleanup() {
  if [[ -n "$TMP" ]]; then rm -rf "$TMP"; fi
  if [[ "$HAVE_LOCK" == 1 ]]; then rm -rf "$LOCK"; fi
}

cached_build_begin() {
  CACHED_BUILD_NAME="$1"
  local wait_minutes="$2"

  if built; then
    echo "$BIN"
    exit 0
  fi

  [[ -n "$GO" && -x "$GO" ]] || { log "no Go toolchain found (set GO=/path/to/go)"; exit 1; }

  mkdir -p "$CACHE"
  LOCK="$DEST.lock"
  trap cached_build_cleanup EXIT

  # Take the lock; wait while another live process holds it, take over a lock whose owner died.
  local deadline=$((SECONDS + wait_minutes * 60)) owner stale
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
}

cached_build_finish() {
  cp "$TMP/wrapper/go.mod" "$TMP/wrapper.go.mod"
  echo "$WANT" >"$TMP/.twister2-ready"
  rm -rf "$TMP/wrapper"

  # Replace an incomplete or outdated directory, then move ours into place in one rename.
  if [[ -e "$DEST" ]]; then
    local old="$DEST.old-$$"
    mv "$DEST" "$old"
    rm -rf "$old"
  fi
  mv "$TMP" "$DEST"
  TMP=""
  log "done: $BIN"
  echo "$BIN"
}
