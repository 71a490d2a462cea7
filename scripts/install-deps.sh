#!/usr/bin/env bash
# install-deps.sh installs everything the tests and the demo need on a fresh
# Debian 12 machine with Go: Debian packages, Go tools, and a Dex binary built
# from the separate tools module in e2e/tools (Dex's go.mod has replace
# directives, so it cannot be `go install`ed and must stay out of our go.mod).
# It is idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${GATEHOUSE_TOOLS_BIN:-$PWD/.tools/bin}"
mkdir -p "$BIN"

APT_PKGS=(chromium openssh-server openssh-client redis-server testssl.sh sslscan ssh-audit wrk hyperfine nginx nghttp2-client tmux asciinema systemd bsdextrautils procps make gcc libc6-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

goinstall() { # name module@version
  if [ ! -x "$BIN/$1" ]; then
    echo "install-deps: go install $2"
    GOBIN="$BIN" go install "$2"
  fi
}
goinstall pebble github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3
goinstall staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2
goinstall govulncheck golang.org/x/vuln/cmd/govulncheck@v1.9.0
if [ "${GATEHOUSE_SKIP_OAUTH2_PROXY:-}" = "" ]; then
  goinstall oauth2-proxy github.com/oauth2-proxy/oauth2-proxy/v7@v7.15.6
fi

if [ ! -x "$BIN/dex" ]; then
  echo "install-deps: building dex (about 80 s)"
  (cd e2e/tools && go build -o "$BIN/dex" github.com/dexidp/dex/cmd/dex)
fi
# The Go vulnerability database for govulncheck, built locally from the
# golang.org/x/vulndb module (the OSV files that vuln.go.dev serves), so that
# `make lint` needs only the Go module proxy, not vuln.go.dev. Refreshed when
# older than a day.
VULNDB="${GATEHOUSE_VULNDB:-$PWD/.tools/vulndb}"
if [ ! -f "$VULNDB/index/db.json" ] || [ -n "$(find "$VULNDB/index/db.json" -mmin +1440)" ]; then
  ver=$(go list -m -f '{{.Version}}' golang.org/x/vulndb@latest)
  echo "install-deps: Go vulnerability database from golang.org/x/vulndb@$ver"
  dir=$(go mod download -json "golang.org/x/vulndb@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/data/osv" ] || { echo "install-deps: no data/osv in golang.org/x/vulndb@$ver" >&2; exit 1; }
  GOBIN="$BIN" go install "golang.org/x/vulndb/cmd/indexdb@$ver"
  rm -rf "$VULNDB.new"
  "$BIN/indexdb" -vulns "$dir/data/osv" -out "$VULNDB.new"
  rm -rf "$VULNDB"
  mv "$VULNDB.new" "$VULNDB"
fi
# The asciinema player for the reviewer console (scripts/player.sh).
bash scripts/player.sh

echo "install-deps: tools in $BIN, vulnerability database in $VULNDB"
