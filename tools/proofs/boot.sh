#!/usr/bin/env bash
# Boot proofs: BIOS and UEFI, 1/2/4 CPUs, 128 MiB and 2 GiB, plus memory
# above 4 GiB and a machine without MCFG.
# usage: tools/proofs/boot.sh <qemu-proof> <boot.iso>
set -euo pipefail
harness=$1
iso=$2

# Extra COM2 expectations for one boot: memory-map lines come before the
# page-table line, ACPI lines between it and the TSC line.
memmap_expect=()
acpi_expect=()

boot() { # <name> <firmware> <smp> <mem> [extra harness options...]
    local name=$1 fw=$2 smp=$3 mem=$4
    shift 4
    local cpus="CPUs"
    [ "$smp" = 1 ] && cpus="CPU"
    "$harness" --name "$name" --image "$iso" --firmware "$fw" --smp "$smp" --mem "$mem" "$@" \
        --expect 're:capOS [0-9]+\.[0-9]+\.[0-9]+ \(x86_64\) booting' \
        --expect 'warn cmdline: unknown kernel option `no-such-option=1` ignored' \
        --expect 're:mem: [0-9]+ MiB usable' \
        --expect "smp: $smp $cpus online" \
        --expect 'capOS kernel ready' \
        "${memmap_expect[@]}" \
        --expect-log 're:\[ *[0-9]+\.[0-9]{6}\] cpu0 info mem: kernel page tables live: .*text RX / rodata R / data RW\+NX' \
        "${acpi_expect[@]}" \
        --expect-log 're:\[ *[0-9]+\.[0-9]{6}\] cpu0 info time: TSC [0-9]+\.[0-9]{3} MHz .*' \
        --expect-log "re:\\[ *[0-9]+\\.[0-9]{6}\\] cpu0 info time: timer interrupts arriving on all $smp CPU\\(s\\), tickless" \
        --exit success
    memmap_expect=()
    acpi_expect=()
}

for fw in bios uefi; do
    for smp in 1 2 4; do
        for mem in 128M 2G; do
            boot "boot-$fw-smp$smp-$mem" "$fw" "$smp" "$mem"
        done
    done
done

# q35 with 4 GiB puts half of RAM above 4 GiB.
memmap_expect=(--expect-log 're:.* info mem: 0x000100000000\.\.0x000180000000 usable')
boot boot-bios-above-4g bios 2 4G

# The i440FX machine has no MCFG table.
acpi_expect=(--expect-log 're:.* info acpi: no MCFG: PCIe enhanced configuration space not described')
boot boot-bios-pc-no-mcfg bios 2 256M --machine pc
