#!/usr/bin/env bash
# Apply Gatehouse's performance patch to golang.org/x/crypto/ssh (see
# README.md): copy x/crypto at the version go.mod requires from the module
# cache into third_party/golang.org/x/crypto, apply gatehouse-ssh.patch and
# point go.mod at the copy with a replace directive. Run from anywhere in
# the repository; `git checkout go.mod && rm -rf third_party/golang.org`
# undoes it.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
ver=$(go list -m -f '{{.Version}}' golang.org/x/crypto)
go mod download golang.org/x/crypto@"$ver"
src=$(go list -m -f '{{.Dir}}' golang.org/x/crypto)
dst=third_party/golang.org/x/crypto
rm -rf "$dst"
mkdir -p "$(dirname "$dst")"
cp -r "$src" "$dst"
chmod -R u+w "$dst"
patch -d "$dst" -p1 < bench/ssh/xcrypto-patch/gatehouse-ssh.patch
go mod edit -replace golang.org/x/crypto="./$dst"
echo "x/crypto $ver patched in $dst; go.mod now has: $(grep '^replace golang.org/x/crypto' go.mod)"
