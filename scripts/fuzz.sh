#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target outside e2e for a short time each
# (FUZZTIME, default 4s), beyond the seed corpora that `go test` runs
# anyway. It finds the targets itself, so a new fuzzer is included without
# editing this file. A failure leaves the crasher in the package's
# testdata/fuzz directory, as `go test -fuzz` does.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-4s}"
failed=""
while IFS=: read -r file name; do
  pkg="./$(dirname "$file")"
  echo "fuzz: $pkg $name ($FUZZTIME)"
  if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/gatehouse-fuzz.log 2>&1; then
    cat /tmp/gatehouse-fuzz.log
    failed="$failed $pkg.$name"
  fi
done < <(grep -rhoE --include='*_test.go' --exclude-dir=e2e --exclude-dir=.tools -H '^func (Fuzz[A-Za-z0-9_]+)' . |
  sed -E 's#^\./##; s#:func #:#' | sort -u)
if [ -n "$failed" ]; then
  echo "fuzz: FAILED:$failed"
  exit 1
fi
echo "fuzz: all targets ran clean"
