#!/usr/bin/env bash
# Builds the Nomad agent from its published Go module, for the Nomad integration tests (test/env/nomad-agent.ts).
#
#   scripts/build-nomad.sh          # prints progress on stderr; the last stdout line is the nomad binary's path
#
# Output: $CACHE/nomad-<version>/bin/nomad, where CACHE is $TWISTER2_TEST_CACHE or ~/.cache/twister2-test.
# Idempotent: when already built it only prints the path. Concurrent callers serialise on a lock directory; the
# build goes to a temporary directory renamed into place, so a half-built directory is never seen. Go modules and
# the build cache live under $CACHE/go (shared with other builds, e.g. scripts/build-k8s.sh). A cold build takes
# about ten minutes on 2 cores (more while another build runs); a rebuild with a warm Go cache about a minute.
#
# Environment: NOMAD_VERSION (default 1.11.3, the newest 1.11 tag the module proxy serves here; keep it in step with
# NOMAD_VERSION in test/env/nomad-agent.ts), NOMAD_API_FALLBACK (see below), GO (default /usr/local/go/bin/go).
set -euo pipefail
# shellcheck source=lib/cached-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/cached-build.sh"

NOMAD_VERSION="${NOMAD_VERSION:-1.11.3}"
NOMAD_VERSION="${NOMAD_VERSION#v}"
DEST="$CACHE/nomad-$NOMAD_VERSION"
BIN="$DEST/bin/nomad"
MARKER="$DEST/.twister2-ready"
WANT="nomad=v$NOMAD_VERSION"

built() {
  [[ -f "$MARKER" && "$(cat "$MARKER")" == "$WANT" && -x "$BIN" ]]
}

cached_build_begin build-nomad 60
log "$("$GO" version); building Nomad v$NOMAD_VERSION into $TMP"

# `go install github.com/hashicorp/nomad@vX` refuses a module with replace directives (nomad/api => ./api, and
# forks of go-winio and hcl). A wrapper module requires nomad at the tag, the api module at the pseudo-version of
# the tag's commit (the api module is not inside nomad's module zip), and copies the tag's other replace lines.
info="$("$GO" mod download -json "github.com/hashicorp/nomad@v$NOMAD_VERSION")"
field() { sed -n "s/^[[:space:]]*\"$1\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" <<<"$info" | head -n 1; }
gomod="$(field GoMod)"
commit="$(field Hash)"
[[ -f "$gomod" ]] || { log "could not download github.com/hashicorp/nomad@v$NOMAD_VERSION: $info"; exit 1; }
[[ "$commit" =~ ^[0-9a-f]{40}$ ]] || { log "no commit hash for v$NOMAD_VERSION in: $info"; exit 1; }
commit_time="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$(field Info)")"
# Replace lines of the tag, single-line and inside `replace ( ... )` blocks, except those to local paths.
replaces="$(awk '
  /^replace[[:space:]]*\($/ { inblock = 1; next }
  inblock && /^\)/ { inblock = 0; next }
  inblock { print; next }
  /^replace[[:space:]]/ { sub(/^replace[[:space:]]+/, ""); print }
' "$gomod" | sed 's/^[[:space:]]*//' | grep -v '=> *\.' | grep -v '^$' || true)"
{
  echo "module twister2.test/nomad-build"
  echo
  echo "go $(sed -n 's/^go \(.*\)/\1/p' "$gomod")"
  echo
  echo "require github.com/hashicorp/nomad v$NOMAD_VERSION"
  if [[ -n "$replaces" ]]; then
    echo
    echo "replace ("
    while read -r r; do echo "	$r"; done <<<"$replaces"
    echo ")"
  fi
} >"$TMP/wrapper/go.mod"
# A main package of the wrapper's own keeps `go get` from pruning anything (nomad is a tool dependency).
printf 'package main\n\nimport _ "github.com/hashicorp/nomad/version"\n\nfunc main() {}\n' >"$TMP/wrapper/main.go"

t0=$SECONDS
# The api module at the tag's own commit is best. The module proxy reachable here refuses that pseudo-version
# (403 "not available"), so fall back to the nearest later api pseudo-version it serves: the api module only grows
# (fields and methods are added, not removed), and Nomad v1.11.3 compiles against this one.
NOMAD_API_FALLBACK="${NOMAD_API_FALLBACK:-v0.0.0-20260324203407-b27b0c2e019a}"
api="$commit"
if ! (cd "$TMP/wrapper" && "$GO" get "github.com/hashicorp/nomad@v$NOMAD_VERSION" "github.com/hashicorp/nomad/api@$commit") >&2; then
  api="$NOMAD_API_FALLBACK"
  log "github.com/hashicorp/nomad/api@$commit is not available; using github.com/hashicorp/nomad/api@$api"
  (cd "$TMP/wrapper" && "$GO" get "github.com/hashicorp/nomad@v$NOMAD_VERSION" "github.com/hashicorp/nomad/api@$api") >&2
fi
log "wrapper go.mod:"$'\n'"$(grep -E '^(module|go) |hashicorp/nomad|=>' "$TMP/wrapper/go.mod" | sed 's/^/  /')"

pkg=github.com/hashicorp/nomad/version
ldflags="-s -w -X $pkg.GitCommit=$commit -X $pkg.BuildDate=${commit_time:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
# Without the `ui` tag a stub replaces the web UI (not needed); hashicorpmetrics is what the release builds use.
(cd "$TMP/wrapper" && "$GO" build -mod=mod -trimpath -tags hashicorpmetrics -ldflags "$ldflags" -o "$TMP/bin/nomad" github.com/hashicorp/nomad) >&2
t1=$SECONDS
log "nomad built in $((t1 - t0)) s"

[[ -x "$TMP/bin/nomad" ]] || { log "missing nomad after the build"; exit 1; }
"$TMP/bin/nomad" version >&2
echo "$(date -u +%FT%TZ) nomad=$((t1 - t0))s api=$api" >>"$TMP/build-times.txt"
cached_build_finish
