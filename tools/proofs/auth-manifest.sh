#!/usr/bin/env bash
# Writes the system file of the identity proofs: the default system.cue, with
# an overlay that seeds the account `operator` (its verifier made by
# mkverifier from the password on stdin) and adds the services named on the
# command line from tools/proofs/manifests/auth-extra.cue.
# usage: tools/proofs/auth-manifest.sh <out-dir> < password
set -euo pipefail
out=$1
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$out"
cp "$root/system.cue" "$out/system.cue"
verifier=$("$root/target/release/mkverifier" --cost 19456,2,1)
{
    cat "$root/tools/proofs/manifests/auth-extra.cue"
    printf 'auth: accounts: operator: {profile: "operator", verifier: "%s"}\n' "$verifier"
} > "$out/system.local.cue"
