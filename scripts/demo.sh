#!/usr/bin/env bash
# demo.sh (`make demo`) starts a complete Gatehouse setup on loopback for a
# first look, prints what to open, and waits; Ctrl-C stops everything and
# deletes the demo's temporary directory.
#
#   Dex (.tools/bin/dex)    the identity provider, with one demo user
#   demoupstream            the web app behind Gatehouse (e2e/demoupstream)
#   sshd                    an SSH target that trusts Gatehouse's user CA
#   gatehouse serve         configs/demo.yaml, embedded store, self-signed TLS
#
# Every port is a free loopback port chosen at run time. Environment:
#   GATEHOUSE_DEMO_SKIP_DEPS=1  do not run scripts/install-deps.sh first
#   GATEHOUSE_DEMO_KEEP=1       keep the temporary directory (logs) on exit
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

if [ -z "${GATEHOUSE_DEMO_SKIP_DEPS:-}" ]; then
  bash scripts/install-deps.sh
fi
DEX_BIN="$ROOT/.tools/bin/dex"
[ -x "$DEX_BIN" ] || die "$DEX_BIN is missing: run scripts/install-deps.sh"
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd is missing (Debian package openssh-server): run scripts/install-deps.sh"

DEMO=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-demo.XXXXXX")
chmod 755 "$DEMO"
names=()
pids=()

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ "${#pids[@]}" -gt 0 ]; then
    say "stopping ${names[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      local alive=0
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
  fi
  if [ -n "${GATEHOUSE_DEMO_KEEP:-}" ]; then
    say "kept $DEMO"
  else
    rm -rf "$DEMO"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND... runs COMMAND in the background with its output in
# $DEMO/logs/NAME.log, in a session of its own: Ctrl-C reaches only this
# script, whose cleanup then stops the programs in order (Go programs would
# otherwise catch the terminal's SIGINT themselves and exit first).
start() {
  local name=$1
  shift
  setsid "$@" >"$DEMO/logs/$name.log" 2>&1 </dev/null &
  names+=("$name")
  pids+=("$!")
}

# fail_log NAME MESSAGE prints the end of NAME's log and exits.
fail_log() {
  printf 'demo: error: %s; last lines of %s:\n' "$2" "$DEMO/logs/$1.log" >&2
  tail -n 30 "$DEMO/logs/$1.log" >&2 || true
  exit 1
}

say "building gatehouse, the demo app and demosetup into $DEMO/bin"
mkdir -p "$DEMO/bin"
CGO_ENABLED=0 go build -trimpath -o "$DEMO/bin/gatehouse" ./cmd/gatehouse
go build -o "$DEMO/bin/demoupstream" ./e2e/demoupstream
go build -o "$DEMO/bin/demosetup" ./e2e/demosetup
GH="$DEMO/bin/gatehouse"
SETUP="$DEMO/bin/demosetup"

# The SSH login on the target. As root, a dedicated local user (sshd with
# UsePAM no refuses a locked account, so its password field is set to "*":
# no password, not locked). Otherwise sshd runs as you and lets only you in.
if [ "$(id -u)" = 0 ]; then
  LOGIN=gh-demo
  if ! id "$LOGIN" >/dev/null 2>&1; then
    say "creating the local user $LOGIN for the SSH target"
    useradd -m -s /bin/bash "$LOGIN"
    usermod -p '*' "$LOGIN"
  fi
  mkdir -p /run/sshd
else
  LOGIN=$(id -un)
fi

"$SETUP" init -dir "$DEMO" -template configs/demo.yaml -login "$LOGIN"
# shellcheck disable=SC1091
source "$DEMO/demo.env"
"$GH" check-config --config "$DEMO/gatehouse.yaml" >/dev/null || die "configs/demo.yaml rendered to an invalid config"

start dex "$DEX_BIN" serve "$DEX_CONFIG"
"$SETUP" wait -timeout 60s -tls-root "$DEX_CA" "$DEX_ISSUER/.well-known/openid-configuration" || fail_log dex "Dex did not start"

# The SSH target trusts Gatehouse's user CA, which `gatehouse ssh-config
# --user-ca` creates in the data directory and prints.
SSH_READY=""
if user_ca=$("$GH" ssh-config --user-ca --config "$DEMO/gatehouse.yaml" 2>"$DEMO/logs/ssh-config.log") &&
  [[ "$user_ca" == ssh-* || "$user_ca" == ecdsa-* ]]; then
  printf '%s\n' "$user_ca" >"$SSHD_TRUSTED_CA_FILE"
  "$GH" ssh-config --config "$DEMO/gatehouse.yaml" 2>>"$DEMO/logs/ssh-config.log" |
    grep '^@cert-authority' >"$KNOWN_HOSTS" || die "gatehouse ssh-config printed no @cert-authority line"
  start sshd /usr/sbin/sshd -D -e -f "$SSHD_CONFIG"
  "$SETUP" wait -timeout 30s "tcp://127.0.0.1:$SSHD_PORT" || fail_log sshd "sshd did not start"
  SSH_READY=1
else
  say "skipping the SSH target: this build of gatehouse has no working 'ssh-config --user-ca' yet ($(head -n 1 "$DEMO/logs/ssh-config.log"))"
fi

start gatehouse "$GH" serve --config "$DEMO/gatehouse.yaml"
"$SETUP" wait -timeout 60s "http://127.0.0.1:$ADMIN_PORT/readyz" "tcp://127.0.0.1:$HTTPS_PORT" ||
  fail_log gatehouse "gatehouse did not become ready"
SELF_SIGNED="$DATA_DIR/tls/self-signed.crt"
[ -f "$SELF_SIGNED" ] || fail_log gatehouse "no self-signed certificate at $SELF_SIGNED"

# The demo app verifies Gatehouse's JWT assertions against its JWKS, over
# TLS pinned to the self-signed certificate.
start upstream "$DEMO/bin/demoupstream" -listen "127.0.0.1:$UPSTREAM_PORT" \
  -issuer "$PUBLIC_URL" -audience demo-app \
  -jwks-dial "127.0.0.1:$HTTPS_PORT" -jwks-root "$SELF_SIGNED"
"$SETUP" wait -timeout 30s "http://127.0.0.1:$UPSTREAM_PORT/healthz" || fail_log upstream "the demo app did not start"

SPKI=$("$SETUP" spki "$SELF_SIGNED" "$DEX_CERT" "$DEX_CA")
BROWSER=$(command -v chromium || command -v chromium-browser || command -v google-chrome || echo chromium)
NOSANDBOX=""
[ "$(id -u)" = 0 ] && NOSANDBOX=" --no-sandbox"

cat <<EOF

================================================================================
 Gatehouse demo is running on loopback.               Ctrl-C stops everything.
================================================================================

 Open the demo app:   $APP_URL
 Sign in at Dex as:   $DEMO_EMAIL
            password: $DEMO_PASSWORD        (groups: engineering, sre)
 Then enrol a passkey or security key when Gatehouse asks; later visits ask
 you to touch it again. The portal is $PUBLIC_URL/

 Reviewer console (the demo user is a reviewer): $PUBLIC_URL/review/
 lists, searches and replays recorded SSH sessions, and watches and
 terminates live ones.

 Certificates: Gatehouse's is self-signed and Dex's (https://$DEX_ADDR)
 comes from a CA made for this run, so browsers warn. Chrome refuses
 WebAuthn on a page with a certificate error, so the easy way is a
 throwaway Chromium profile that trusts exactly these certificates:

   $BROWSER$NOSANDBOX --user-data-dir=$DEMO/chromium \\
     --ignore-certificate-errors-spki-list=$SPKI \\
     $APP_URL

 (Or accept the warnings for app.localhost, gate.localhost and $DEX_ADDR,
 or trust $SELF_SIGNED and $DEX_CA in your browser.)
EOF
if [ -n "$SSH_READY" ]; then
  cat <<EOF

 SSH to the target "demo-target" as $LOGIN (allowed: group sre) with a key
 made for this demo; the first connection prints a URL and a code to
 approve in the browser, then the shell opens. The session is recorded:
 find it at $PUBLIC_URL/review/ while it runs.

   ssh -p $SSH_PORT -i $CLIENT_KEY -o IdentitiesOnly=yes \\
     -o UserKnownHostsFile=$KNOWN_HOSTS -o StrictHostKeyChecking=yes \\
     $LOGIN@demo-target@127.0.0.1
EOF
fi
cat <<EOF

 Logs: $DEMO/logs/{gatehouse,dex,upstream,sshd}.log
       (the directory is deleted on exit; GATEHOUSE_DEMO_KEEP=1 keeps it)
================================================================================
EOF

# Wait until Ctrl-C, or until one of the programs exits by itself.
set +e
wait -n "${pids[@]}"
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    fail_log "${names[$i]}" "${names[$i]} exited"
  fi
done
