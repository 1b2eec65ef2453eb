#!/usr/bin/env bash
# Fault proofs: kernels told to page-fault, panic or overflow their stack must
# print the named report and exit QEMU with the failure code, and the harness,
# run as for a normal boot, must report the run as a failure naming the report.
# usage: tools/proofs/faults.sh <qemu-proof> <iso-dir>
set -uo pipefail
harness=$1
dir=$2
status=0

expect_failure() { # <name> <text the harness must report>
    local name=$1 text=$2 out
    out=$("$harness" --name "fault-$name" --image "$dir/$name.iso" --smp 2 --mem 128M \
        --timeout 20 --expect 'capOS kernel ready' --exit success 2>&1)
    local rc=$?
    if [ $rc -eq 0 ]; then
        echo "proof fault-$name: FAIL: the harness passed a kernel that must fail"
        status=1
    elif ! grep -qF -- "$text" <<<"$out"; then
        echo "proof fault-$name: FAIL: harness output lacks \"$text\":"
        echo "$out" | sed 's/^/  | /'
        status=1
    else
        echo "proof fault-$name: PASS (harness reported: $(grep -F -- "$text" <<<"$out" | head -1 | cut -c1-150))"
    fi
}

expect_failure pagefault 'EXCEPTION: page fault (#PF) on cpu 0: rip=0x'
expect_failure pagefault 'cr2=0xfffff000dead0000 error=0x0 [not-present read kernel]'
expect_failure panic 'KERNEL PANIC on cpu 0 at kernel/src/main.rs'
expect_failure stack-overflow 'EXCEPTION: double fault (#DF) on cpu 0'
exit $status
