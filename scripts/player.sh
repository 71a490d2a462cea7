#!/usr/bin/env bash
# player.sh fetches the asciinema player for the reviewer console and puts
# its bundle where the web package embeds it. `make build`, `make demo` and
# install-deps.sh run it; it is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# The asciinema player for the reviewer console: npm ci in web/player (the
# version package-lock.json pins, no install scripts run), then its bundle
# copied into web/static/vendor/, which the web package embeds. The copies
# are not committed; a stamp of the lock file skips this step while they
# match it.
PLAYER_DIR=web/player
VENDOR=web/static/vendor
stamp=$(sha256sum "$PLAYER_DIR/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$VENDOR/asciinema-player.min.js" ] || [ ! -f "$VENDOR/asciinema-player.css" ] ||
  [ "$(cat "$VENDOR/.lock-sha256" 2>/dev/null)" != "$stamp" ]; then
  if ! command -v npm >/dev/null; then
    echo "player: apt packages: nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "player: asciinema player (npm ci in $PLAYER_DIR)"
  (cd "$PLAYER_DIR" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  dist="$PLAYER_DIR/node_modules/asciinema-player/dist/bundle"
  install -m 0644 "$dist/asciinema-player.min.js" "$dist/asciinema-player.css" "$VENDOR/"
  echo "$stamp" >"$VENDOR/.lock-sha256"
fi

