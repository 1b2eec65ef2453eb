#!/usr/bin/env bash
# Packs a capOS kernel into a hybrid BIOS/UEFI ISO with GRUB 2.
# usage: tools/mkiso.sh <kernel-elf> <out.iso> [kernel command line] [module...]
# Each module (a user program) becomes a boot module named after its file.
set -euo pipefail
kernel=$1
out=$2
cmdline=${3:-}
shift 3 || shift $#
work=$(mktemp -d)
errlog=$(mktemp)
trap 'rm -rf "$work" "$errlog"' EXIT
mkdir -p "$work/boot/grub"
cp "$kernel" "$work/boot/capos-kernel"
mkdir -p "$work/boot/bin"
modules=""
for m in "$@"; do
    name=$(basename "$m")
    cp "$m" "$work/boot/bin/$name"
    modules="$modules    module2 /boot/bin/$name $name
"
done
cat > "$work/boot/grub/grub.cfg" <<CFG
set timeout=0
set default=0
insmod all_video
menuentry "capOS" {
    multiboot2 /boot/capos-kernel $cmdline
$modules    boot
}
CFG
mkdir -p "$(dirname "$out")"
grub-mkrescue -o "$out" "$work" >/dev/null 2>"$errlog" || { cat "$errlog" >&2; exit 1; }
