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

APT_PKGS=(chromium openssh-server openssh-client redis-server testssl.sh sslscan ssh-audit wrk hyperfine nginx tmux asciinema systemd bsdextrautils procps make gcc libc6-dev)
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
echo "install-deps: tools in $BIN"
