#!/usr/bin/env bash
# Builds a boot manifest: `cue export` of a system file (tools/cue/export.js:
# schema/system.cue + FILE + its overlay FILE.local.cue when present), then
# tools/mkmanifest, which checks it against the boot package's binaries and
# writes the Cap'n Proto SystemManifest.
# usage: tools/manifest.sh [--no-overlay] <system.cue> <out/manifest.bin> <binary,binary,...>
# MKMANIFEST names a prebuilt mkmanifest; by default `cargo run` builds it.
set -euo pipefail
overlay=()
if [ "${1:-}" = "--no-overlay" ]; then
    overlay=(--no-overlay)
    shift
fi
if [ "$#" -ne 3 ]; then
    echo "usage: tools/manifest.sh [--no-overlay] <system.cue> <out/manifest.bin> <binary,binary,...>" >&2
    exit 2
fi
system=$1
out=$2
binaries=$3
root="$(cd "$(dirname "$0")/.." && pwd)"

json=$(mktemp)
trap 'rm -f "$json"' EXIT
node "$root/tools/cue/export.js" "${overlay[@]}" "$system" > "$json"
if [ -n "${MKMANIFEST:-}" ]; then
    "$MKMANIFEST" --json "$json" --binaries "$binaries" --out "$out"
else
    cargo run -q --manifest-path "$root/Cargo.toml" -p capos-tools --bin mkmanifest -- \
        --json "$json" --binaries "$binaries" --out "$out"
fi
