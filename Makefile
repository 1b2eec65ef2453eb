# capOS build, run and test entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := iso

CARGO        ?= cargo
KERNEL_DIR   := target/kernel
KERNEL       := $(KERNEL_DIR)/x86_64-unknown-none/release/capos-kernel
KERNEL_FLAGS := -C relocation-model=static -C code-model=kernel
USER_DIR     := target/user
USER_BIN     := $(USER_DIR)/x86_64-unknown-none/release
USER_FLAGS   := -C relocation-model=static -C code-model=small \
	-C link-arg=-T$(CURDIR)/capos-rt/user.ld -C link-arg=--no-pie -C strip=debuginfo
# User programs packed into every image as boot modules.
USER_PROGRAMS := hello template isolation leak nop preempt exhaust bench hostile ipc echo-server echo-client transfer notify provider consumer crasher term capos-shell credstore sessions audit login keeper authprobe threads fair tickless scale logforge
ISO          := target/capos.iso
HARNESS      := target/release/qemu-proof
PROOF_ISOS   := target/iso
comma        := ,
space        := $(empty) $(empty)
# `make run` boots the system described by system.cue (and system.local.cue).
RUN_CMDLINE  ?=
RUN_SMP      ?= 2
RUN_MEM      ?= 512M

# The kernel and user programs are built for x86_64-unknown-none in target
# directories of their own so the two code models never mix (nor with host
# tools). init is embedded in the kernel: build.rs reads CAPOS_INIT_ELF.
USER_CARGO   := CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(USER_FLAGS)" \
	$(CARGO)
USER_PKGS    := -p capos-init -p hello -p template -p proof-programs -p hostile -p ipc-programs -p cap-programs -p service-programs -p capos-shell -p auth-services -p thread-programs
KERNEL_CARGO := CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(KERNEL_FLAGS)" \
	CAPOS_INIT_ELF=$(CURDIR)/$(USER_BIN)/init $(CARGO)
KERNEL_BUILD := $(KERNEL_CARGO) build -p capos-kernel --target x86_64-unknown-none --release \
	--target-dir $(KERNEL_DIR)
MODULES      := $(addprefix $(USER_BIN)/,$(USER_PROGRAMS))
BINARY_LIST  := $(subst $(space),$(comma),$(strip $(USER_PROGRAMS)))
MKMANIFEST   := target/release/mkmanifest
MANIFEST     := target/manifests/system/manifest.bin
# manifest-of,<system.cue>,<name>: builds target/manifests/<name>/manifest.bin
manifest-of = mkdir -p target/manifests/$(2) && MKMANIFEST=$(MKMANIFEST) \
	tools/manifest.sh --no-overlay $(1) target/manifests/$(2)/manifest.bin $(BINARY_LIST)

.PHONY: run-exhaust run-quota run-log-forge run-auth run-shell run-tickless run-fair run-threads run-terminal mkmanifest manifest run-manifest run-preempt run-transfer run-notify run-ipc run-app schema schema-check run-hello run-hostile run-isolation run-leak bench help setup user kernel iso run test fmt-check clippy host-test proofs clean \
	harness run-boot run-serial run-faults

help:
	@echo "make run      build capOS and boot it in QEMU (COM1 here, COM2 in target/qemu-debug.log)"
	@echo "make run-app APP=name   boot a program of your own (start from demos/template)"
	@echo "make test     format check, clippy, host tests and every QEMU proof (what CI runs)"
	@echo "make iso      build $(ISO)"
	@echo "make bench    ring and spawn figures measured inside the guest"
	@echo "make clean    remove build output"

setup:
	@tools/setup.sh

user: setup
	@echo "==> user programs"
	@$(USER_CARGO) build $(USER_PKGS) \
		--target x86_64-unknown-none --release --target-dir $(USER_DIR)

kernel: user
	@echo "==> kernel"
	@$(KERNEL_BUILD)

mkmanifest: setup
	@$(CARGO) build -q -p capos-tools --release --bin mkmanifest --bin mkverifier

# The boot manifest: system.cue (+ the operator's system.local.cue) through
# CUE (tools/cue) and tools/mkmanifest.
manifest: mkmanifest user
	@echo "==> $(MANIFEST) from system.cue"
	@mkdir -p $(dir $(MANIFEST))
	@MKMANIFEST=$(MKMANIFEST) tools/manifest.sh system.cue $(MANIFEST) $(BINARY_LIST)

iso: kernel manifest
	@echo "==> $(ISO)"
	@tools/mkiso.sh $(KERNEL) $(ISO) "$(RUN_CMDLINE)" $(MODULES) $(MANIFEST)

QEMU_RUN = qemu-system-x86_64 -machine q35 -cpu max -smp $(RUN_SMP) -m $(RUN_MEM) \
	-display none -no-reboot -serial mon:stdio -serial file:target/qemu-debug.log

run: iso
	@echo "==> booting capOS in QEMU (Ctrl-A X quits; debug log: target/qemu-debug.log)"
	@$(QEMU_RUN) -cdrom $(ISO)

# Build one more program (a copy of demos/template, say) and boot it as
# init's only child with the caps `console`, `log` and `timer`.
APP_ISO := target/iso/app.iso
run-app: kernel
	@test -n "$(APP)" || { echo "usage: make run-app APP=<package with a binary of the same name>"; exit 2; }
	@echo "==> $(APP)"
	@$(USER_CARGO) build -p $(APP) --target x86_64-unknown-none --release --target-dir $(USER_DIR)
	@tools/mkiso.sh $(KERNEL) $(APP_ISO) "init=$(APP):console$(comma)log$(comma)timer $(RUN_CMDLINE_EXTRA)" \
		$(sort $(MODULES) $(USER_BIN)/$(APP))
	@echo "==> booting $(APP) in QEMU (Ctrl-A X quits; debug log: target/qemu-debug.log)"
	@$(QEMU_RUN) -cdrom $(APP_ISO)

harness: setup
	@$(CARGO) build -q -p capos-tools --release --bin qemu-proof

# --- proofs ---------------------------------------------------------------
# Each proof boots an ISO whose kernel command line selects what to do, and
# the harness (tools/src/bin/qemu-proof.rs) checks exact lines on COM1/COM2.

$(PROOF_ISOS)/%.iso: kernel
	@true

# User-space proofs run on QEMU's `max` CPU model (SMEP, SMAP, RDRAND);
# the boot proofs keep the baseline qemu64 model.
USER_QEMU := --qemu-arg -cpu --qemu-arg max
proof-iso = tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/$(1).iso "$(2)" $(MODULES)

run-boot: kernel harness
	@$(call proof-iso,boot,harness log=debug no-such-option=1)
	@tools/proofs/boot.sh $(HARNESS) $(PROOF_ISOS)/boot.iso

run-serial: kernel harness
	@$(call proof-iso,serial,harness test=serial-echo)
	@$(HARNESS) --name serial --image $(PROOF_ISOS)/serial.iso --smp 2 --mem 128M \
		--expect 'capOS kernel ready' --send 'hello capOS\r' \
		--expect 'serial: received "hello capOS"' --exit success

run-hello: kernel harness
	@$(call proof-iso,hello,harness init=hello:console$(comma)sysinfo$(comma)clock$(comma)timer$(comma)log)
	@$(HARNESS) --name hello --image $(PROOF_ISOS)/hello.iso $(USER_QEMU) --smp 2 --mem 256M \
		--expect 'init: starting hello with 5 cap(s)' \
		--expect 'hello: hello from user space' \
		--expect 're:hello: capOS [0-9.]+ on capos, 2 CPU\(s\), [0-9]+ MiB total' \
		--expect 're:hello: wall clock 20[2-9][0-9]-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] UTC' \
		--expect 'hello: timer slept 20 ms (measured at least 20 ms)' \
		--expect 'hello: done' \
		--expect 'init: hello exited with code 0' \
		--expect 'init: exited with code 0' \
		--expect-log 're:.* info cpu: SMEP on, SMAP on' \
		--expect-log 're:.* info log: #1 Info hello: hello wrote to the log' \
		--exit success

# Every line `hostile` prints, in order (demos/hostile/src/main.rs explains
# the format); a `mismatch` line names a case that gave the wrong error.
run-hostile: kernel harness
	@$(call proof-iso,hostile,harness init=hostile:console$(comma)sysinfo$(comma)timer$(comma)log$(comma)spawner$(comma)ipc$(comma)vm$(comma)threads)
	@$(HARNESS) --name hostile --image $(PROOF_ISOS)/hostile.iso $(USER_QEMU) --smp 2 --mem 256M \
		--fail-on 'hostile: mismatch' --fail-on 'must never appear' --fail-on 'survived' \
		--expect 'init: starting hostile with 8 cap(s)' \
		--expect 'hostile: params at null: BadPointer' \
		--expect 'hostile: params unmapped: BadPointer' \
		--expect 'hostile: params in the kernel half: BadPointer' \
		--expect 'hostile: params crossing into an unmapped page: BadPointer' \
		--expect 'hostile: params wrapping past 2^64: BadPointer' \
		--expect 'hostile: results at null: BadPointer' \
		--expect 'hostile: results unmapped: BadPointer' \
		--expect 'hostile: results in the kernel half: BadPointer' \
		--expect 'hostile: results crossing into an unmapped page: BadPointer' \
		--expect 'hostile: results wrapping past 2^64: BadPointer' \
		--expect 'hostile: results in the read-only startup page: BadPointer' \
		--expect 'hostile: results in program code: BadPointer' \
		--expect 'hostile: unheld slot 40: InvalidCap' \
		--expect 'hostile: slot 5000 past the table: InvalidCap' \
		--expect 'hostile: null CapId: InvalidCap' \
		--expect 'hostile: held slot with a forged generation: StaleCap' \
		--expect 'hostile: method 99 on Console: BadMethod' \
		--expect 'hostile: Console cap called as SystemInfo: WrongInterface' \
		--expect 'hostile: params of 8 bytes 0xff: Malformed' \
		--expect 'hostile: segment table claiming a huge segment: Malformed' \
		--expect 'hostile: text pointer out of bounds: Malformed' \
		--expect 'hostile: text not UTF-8: Malformed' \
		--expect 'hostile: params of 64 KiB of zeros: Malformed' \
		--expect 'hostile: valid params with 8 trailing bytes: Malformed' \
		--expect 'hostile: params of 0 bytes at null: Malformed' \
		--expect 'hostile: params_len 0xfffffff0: TooLarge' \
		--expect 'hostile: results_len 0xffffffff: TooLarge' \
		--expect 'hostile: params_len 65537: TooLarge' \
		--expect 'hostile: xfer_count 17: TooLarge' \
		--expect 'hostile: opcode 200: BadOpcode' \
		--expect 'hostile: opcode 255: BadOpcode' \
		--expect 'hostile: PIPELINE: BadOpcode' \
		--expect 'hostile: NOP with flags 0x01: Malformed' \
		--expect 'hostile: CALL with flags 0x80: Malformed' \
		--expect 'hostile: NOP with reserved 1: Malformed' \
		--expect 'hostile: RELEASE of sysinfo with reserved 1: Malformed' \
		--expect 'hostile: NOP with garbage in every unused field: ok' \
		--expect 'hostile: RELEASE of the null CapId: InvalidCap' \
		--expect 'hostile: sysinfo after the refused RELEASE: ok' \
		--expect 'hostile: order: opcode 200 with flags 0x01: BadOpcode' \
		--expect 'hostile: order: flags 0x01 on a forged cap: Malformed' \
		--expect 'hostile: order: forged cap with a wrong interface: InvalidCap' \
		--expect 'hostile: order: wrong interface with method 99: WrongInterface' \
		--expect 'hostile: order: method 99 with params_len 0xfffffff0: BadMethod' \
		--expect 'hostile: order: method 99 with params at null: BadMethod' \
		--expect 'hostile: order: params_len 65537 at null: TooLarge' \
		--expect 'hostile: order: results at null with malformed params: BadPointer' \
		--expect 'hostile: ring full after 64 SQEs: ok' \
		--expect 'hostile: full CQ holds back 64 SQEs: ok' \
		--expect 'hostile: 192 NOPs completed in order: ok' \
		--expect 'hostile: sq_tail overwritten with 0x80000000: Malformed' \
		--expect 'hostile: NOP after restoring sq_tail from 0x80000000: ok' \
		--expect 'hostile: sq_tail overwritten with 0xffffffff: Malformed' \
		--expect 'hostile: NOP after restoring sq_tail from 0xffffffff: ok' \
		--expect 'hostile: cq_head overwritten with 0x80000000: Malformed' \
		--expect 'hostile: NOP after restoring cq_head from 0x80000000: ok' \
		--expect 'hostile: cq_head overwritten with 0xffffffff: Malformed' \
		--expect 'hostile: NOP after restoring cq_head from 0xffffffff: ok' \
		--expect 'hostile: cap_enter for 2^32-1 completions with timeout 0: Timeout' \
		--expect 'hostile: cap_enter for 1 completion with a 1 ms timeout: Timeout' \
		--expect 'hostile: cap_enter for 0 completions without a deadline: ok' \
		--expect 'hostile: system call 2: BadOpcode' \
		--expect 'hostile: system call 2^64-1: BadOpcode' \
		--expect 'hostile: SystemInfo.info still answers: ok' \
		--expect 'hostile: writeLine of 70 KiB: TooLarge' \
		--expect 'hostile: SystemInfo results into 8 bytes: Overflow' \
		--expect 'hostile: SystemInfo results into 0 bytes at null: Overflow' \
		--expect 'hostile: spawn of a missing binary: AppError' \
		--expect 'hostile: spawn granting a forged cap: AppError' \
		--expect 'hostile: spawn with 33 arguments: AppError' \
		--expect 'hostile: spawn with 1 KiB of arguments: AppError' \
		--expect 'hostile: spawn granting two caps under one name: AppError' \
		--expect 'hostile: spawn granting a cap under an empty name: AppError' \
		--expect 'hostile: spawn granting a cap under a 32-byte name: ok' \
		--expect 'hostile: makeRevocable 10000 levels deep, past 32: AppError' \
		--expect 'hostile: written through 32 revocable levels' \
		--expect 'hostile: writeLine through 32 revocable levels: ok' \
		--expect 'hostile: revoke of level 16: ok' \
		--expect 'hostile: writeLine through 32 levels after revoking level 16: Revoked' \
		--expect 'hostile: written through 15 revocable levels' \
		--expect 'hostile: writeLine through 15 levels after revoking level 16: ok' \
		--expect 'hostile: revoke of level 1: ok' \
		--expect 'hostile: writeLine through 15 levels after revoking level 1: Revoked' \
		--expect 'hostile: RELEASE of the 32-level wrapper: ok' \
		--expect 'hostile: RELEASE of the 15-level wrapper: ok' \
		--expect 'hostile: console after the chains' \
		--expect 'hostile: console after the revocable chains: ok' \
		--expect 'hostile: CALL moving a cap into a full endpoint queue: Overflow, the moved cap then ok' \
		--expect 'hostile: queued calls after the endpoint closed: 64 of 64 Disconnected' \
		--expect 'hostile: RECV into a buffer unmapped after its submission: BadPointer' \
		--expect 'hostile: the CALL after the failed RECV: pending' \
		--expect 'hostile: the next RECV takes the call and answers it: ok' \
		--expect 'hostile: the caller after that answer: ok' \
		--expect 'hostile: RECV of a call with a cap into a full cap table: QuotaExceeded' \
		--expect 'hostile: the CALL after the RECV into a full table: pending' \
		--expect 'hostile: the next RECV takes the call and answers it: ok' \
		--expect 'hostile: the caller after that answer: ok' \
		--expect 'hostile: thread entry 0x800000000000 (non-canonical): BadPointer' \
		--expect 'hostile: thread entry in the kernel half: BadPointer' \
		--expect 're:proc: hostile \(pid [0-9]+\) thread [0-9]+ killed by page fault \(vector 14\) at rip=0x7ffffffffffe addr=0x7ffffffffffe' \
		--expect 'hostile: thread entry 2 bytes below the end of user space: faulted' \
		--expect 'hostile: RELEASE of timer with garbage in every unused field: ok' \
		--expect 'hostile: Timer.now after RELEASE: StaleCap' \
		--expect 'hostile: second RELEASE of timer: StaleCap' \
		--expect 'hostile: old timer id as a ProcessHandle: StaleCap' \
		--expect 'hostile: child spin ended with code -9' \
		--expect-log 're:.* info proc: hostile \(pid [0-9]+\) killed' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by general protection fault \(vector 13\) at rip=0x[0-9a-f]+ addr=0x0' \
		--expect 'hostile: child privileged ended with code -269' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by general protection fault \(vector 13\) at rip=0x[0-9a-f]+ addr=0x0' \
		--expect 'hostile: child soft-int ended with code -269' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by general protection fault \(vector 13\) at rip=0x[0-9a-f]+ addr=0x0' \
		--expect 'hostile: child port-io ended with code -269' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by general protection fault \(vector 13\) at rip=0x[0-9a-f]+ addr=0x0' \
		--expect 'hostile: child non-canonical-read ended with code -269' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by page fault \(vector 14\) at rip=0x[0-9a-f]+ addr=0xffffffff80000000' \
		--expect 'hostile: child kernel-read ended with code -270' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by page fault \(vector 14\) at rip=0x[0-9a-f]+ addr=0x8' \
		--expect 'hostile: child null-write ended with code -270' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by page fault \(vector 14\) at rip=0x[0-9a-f]+ addr=0xffffffff7ffffff8' \
		--expect 'hostile: child bad-stack ended with code -270' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by invalid opcode \(vector 6\) at rip=0x[0-9a-f]+ addr=0x0' \
		--expect 'hostile: child invalid-opcode ended with code -262' \
		--expect 're:proc: hostile \(pid [0-9]+\) killed by divide error \(vector 0\) at rip=0x[0-9a-f]+ addr=0x0' \
		--expect 'hostile: child divide ended with code -256' \
		--expect 'hostile: child syscall-kernel-rsp ended with code 77' \
		--expect 'hostile: all 112 cases gave their named error' \
		--expect 'init: hostile exited with code 0' \
		--expect 'init: exited with code 0' \
		--exit success

run-isolation: kernel harness
	@$(call proof-iso,isolation,harness init=isolation:console$(comma)spawner$(comma)vm)
	@$(HARNESS) --name isolation --image $(PROOF_ISOS)/isolation.iso $(USER_QEMU) --smp 2 --mem 256M \
		--expect 'init: starting isolation with 3 cap(s)' \
		--expect 'isolation: parent holds 3 caps, secret set, mapped 0x100000000000' \
		--expect 'isolation child: holds exactly 1 cap(s): console' \
		--expect 'isolation child: its copy of the secret reads 0x0' \
		--expect "isolation child: the parent's spawner CapId gives InvalidCap" \
		--expect 'isolation: child ended with code 0' \
		--expect 're:proc: isolation \(pid [0-9]+\) killed by page fault \(vector 14\) at rip=0x[0-9a-f]+ addr=0x100000000000' \
		--expect 'isolation: peek ended with code -270' \
		--expect 'isolation: memory and caps are private to each process' \
		--expect 'init: isolation exited with code 0' \
		--expect 'init: exited with code 0' \
		--exit success

run-preempt: kernel harness
	@$(call proof-iso,preempt,harness init=preempt:console$(comma)spawner$(comma)timer$(comma)log)
	@$(HARNESS) --name preempt --image $(PROOF_ISOS)/preempt.iso $(USER_QEMU) --smp 2 --mem 256M \
		--expect 'init: starting preempt with 4 cap(s)' \
		--expect 'preempt: 4 SSE workers kept all 16 XMM registers across preemption' \
		--expect 'preempt: 2 CPU-bound spinners were preempted and killed' \
		--expect 'preempt: panicking child exited with code 101' \
		--expect 'init: preempt exited with code 0' \
		--expect-log 're:.* info proc: started preempt \(pid [0-9]+, parent 2\) as thread [0-9]+ on cpu0, .*' \
		--expect-log 're:.* info proc: started preempt \(pid [0-9]+, parent 2\) as thread [0-9]+ on cpu1, .*' \
		--expect-log 're:.* info log: #[0-9]+ Error preempt: panic: deliberate panic in a child at demos/proofs/src/bin/preempt.rs:[0-9]+' \
		--exit success

# Cap transfer between processes (copy, move, result caps), refused
# descriptors, revocation, and the status of a crashed child
# (demos/caps/src/bin/transfer.rs).
run-transfer: kernel harness
	@$(call proof-iso,transfer,harness init=transfer:console$(comma)spawner$(comma)ipc)
	@$(HARNESS) --name transfer --image $(PROOF_ISOS)/transfer.iso $(USER_QEMU) --smp 2 --mem 256M \
		--fail-on 'transfer: FAILED' --fail-on 'must never appear' \
		--expect 'init: starting transfer with 3 cap(s)' \
		--expect 'transfer: server: hello through a transferred console' \
		--expect "transfer: copy of console: server granted only endpoint, got 1 cap(s), writeLine ok; the driver's console then ok" \
		--expect "transfer: move of a notification: server got 1 cap(s), signal then wait gave 0b1; the driver's CapId then gives StaleCap" \
		--expect "transfer: result cap from the server: minted an Echo cap with cookie 8, 1 cap(s) arrived; calling it reaches the server with cookie 8 (the driver's own cap: cookie 7)" \
		--expect 'transfer: one cap moved by two CALLs in one batch: first got 1 cap(s), second StaleCap' \
		--expect 'transfer: a CapId the driver does not hold (slot 40): InvalidCap' \
		--expect 'transfer: descriptor mode 9 after a move of console: Malformed; console then ok' \
		--expect 'transfer: console twice in one CALL: Malformed; console then ok' \
		--expect 'transfer: descriptor with reserved 1 after a move of console: Malformed; console then ok' \
		--expect 'transfer: refused CALLs that reached the server: 0' \
		--expect 'transfer: written through the revocable console' \
		--expect 'transfer: server: hello through the revocable console' \
		--expect "transfer: revocable copy of console: 2 result caps; the driver's writeLine ok; passed on, server got 1 cap(s), writeLine ok" \
		--expect "transfer: revoke ok: the driver's wrapped cap gives Revoked; server: its copy gives Revoked; the original console ok" \
		--expect 're:proc: transfer \(pid [0-9]+\) killed by page fault \(vector 14\) at rip=0x[0-9a-f]+ addr=0x8' \
		--expect 'transfer: crashed child: wait gave -270; status: exited true, exit code -270, cause page fault, fault rip in the program, fault address 0x8' \
		--expect 'transfer: server answered bye and exited with code 0' \
		--expect 'transfer: all 13 checks passed' \
		--expect 'init: transfer exited with code 0' \
		--expect 'init: exited with code 0' \
		--exit success

# Notification wait, timeout and cross-process signal (demos/caps/src/bin/notify.rs).
run-notify: kernel harness
	@$(call proof-iso,notify,harness init=notify:console$(comma)ipc$(comma)timer$(comma)spawner)
	@$(HARNESS) --name notify --image $(PROOF_ISOS)/notify.iso $(USER_QEMU) --smp 2 --mem 256M \
		--fail-on 'notify: FAILED' \
		--expect 'init: starting notify with 4 cap(s)' \
		--expect 'notify: wait for 0b1 with a 50 ms timeout, nothing signalled: Timeout after at least 50 ms' \
		--expect 'notify: signal 0b100, then wait for 0b100 without a deadline: 0b100, within the submitting cap_enter' \
		--expect 'notify: signal 0b1010, wait for 0b10 gives 0b10, then wait for 0b1000 gives 0b1000' \
		--expect 'notify: wait for 0b1 while a child sleeps 30 ms and signals it: 0b1 after at least 30 ms; child exited with code 0' \
		--expect 'notify: wait for 0b1 again with a 10 ms timeout: Timeout' \
		--expect 'notify: wait with mask 0: AppError (code 2)' \
		--expect 'notify: all 6 checks passed' \
		--expect 'init: notify exited with code 0' \
		--expect 'init: exited with code 0' \
		--exit success

# Every line of the IPC proof, in order (demos/ipc/src/bin/ipc.rs explains
# the format); a `mismatch` line names a case that gave the wrong result.
run-ipc: kernel harness
	@$(call proof-iso,ipc,harness init=ipc:console$(comma)spawner$(comma)ipc$(comma)timer)
	@$(HARNESS) --name ipc --image $(PROOF_ISOS)/ipc.iso $(USER_QEMU) --smp 2 --mem 256M \
		--fail-on 'mismatch' --fail-on 'panic:' \
		--expect 'init: starting ipc with 4 cap(s)' \
		--expect 'ipc: RECV on a minted Echo cap: WrongInterface' \
		--expect 'ipc: RECV on a minted Echo cap, naming Echo: WrongInterface' \
		--expect 'ipc: RETURN on a minted Echo cap: WrongInterface' \
		--expect "ipc: RECV on a cap minted to claim Endpoint's interface: WrongInterface" \
		--expect 'ipc: RECV on the console: WrongInterface' \
		--expect 'ipc: RETURN on the console: WrongInterface' \
		--expect 'ipc: RETURN of call id 999999: UnknownCall' \
		--expect 'ipc: RECV of a queued call: ok' \
		--expect 'ipc: cookie of a call whose params carry cookie 0xdead: 0x5678' \
		--expect 'ipc: its interface and method: Echo.0' \
		--expect 'ipc: its params arrive byte for byte: ok' \
		--expect 'ipc: RETURN with status WrongInterface: Malformed' \
		--expect 'ipc: RETURN of 65537 bytes: TooLarge' \
		--expect 'ipc: RETURN of results at an unmapped address: BadPointer' \
		--expect 'ipc: RETURN of the call on another endpoint: UnknownCall' \
		--expect 'ipc: RETURN of the echo: ok' \
		--expect 'ipc: second RETURN of the same call: UnknownCall' \
		--expect "ipc: the caller's completion: ok" \
		--expect 'ipc: cookies of calls through two minted caps, in order: 0x5678 then 0x9abc' \
		--expect 'ipc: caller references of two calls from one process: equal' \
		--expect 'ipc: RETURN with AppError: ok' \
		--expect 'ipc: RETURN with BadMethod: ok' \
		--expect 'ipc: the AppError seen by the caller: AppError 7 (refused by the driver)' \
		--expect 'ipc: the BadMethod seen by the caller: BadMethod' \
		--expect 'ipc: RECV of a 128-byte call into 16 bytes: Overflow' \
		--expect "ipc: RECV of it into a header's 40 bytes: Overflow" \
		--expect 'ipc: RECV of it into 4096 bytes: ok' \
		--expect 'ipc: RETURN of 128 bytes to a caller with a 16-byte buffer: ok' \
		--expect "ipc: the caller's completion: Overflow" \
		--expect 'ipc: RECV of a call with a cap, no room for its CapId: Overflow' \
		--expect 'ipc: RECV of it with room for the CapId: ok with 1 cap(s)' \
		--expect 'ipc: this line went through a console cap sent with a call' \
		--expect 'ipc: writeLine through the console cap received: ok' \
		--expect 'ipc: RETURN of the call with a cap: ok' \
		--expect "ipc: the caller's completion: ok" \
		--expect 're:ipc: a call with 65536 bytes of params: (received|CALL refused with TooLarge)' \
		--expect 'ipc: RECV of a small call queued after it: ok' \
		--expect 'ipc: 70 calls on an endpoint nobody serves: 6 Overflow' \
		--expect 'ipc: releasing the serving cap with 64 calls queued: 64 Disconnected' \
		--expect 'ipc: the RELEASE: 1 ok' \
		--expect 'ipc: a call through a cap of the closed endpoint: Disconnected' \
		--expect 'ipc: 17 RECVs on an endpoint nobody calls: 1 Overflow' \
		--expect 'ipc: releasing the serving cap with 16 RECVs waiting: 16 Disconnected' \
		--expect 'ipc: the RELEASE: 1 ok' \
		--expect 'ipc: RECVs of 64 queued calls: 64 received' \
		--expect 'ipc: RECV with 64 calls unanswered: Overflow' \
		--expect 'ipc: releasing the serving cap with them: 65 Disconnected' \
		--expect 'ipc: the RELEASE: 1 ok' \
		--expect 'ipc: starting echo-server and echo-client' \
		--expect 'echo-server: serving Echo' \
		--expect 'echo-server: calls arrive for Echo with cookie 0x1234' \
		--expect 'echo-client: round trip of 0 bytes intact' \
		--expect 'echo-client: round trip of 1 bytes intact' \
		--expect 'echo-client: round trip of 100 bytes intact' \
		--expect 'echo-client: round trip of 4096 bytes intact' \
		--expect 'echo-client: round trip of 65000 bytes intact' \
		--expect 'echo-client: method 7: BadMethod' \
		--expect 'echo-client: params of 8 bytes 0xff: Malformed' \
		--expect 'echo-client: data `raise`: AppError 2 (echo-server refuses to echo `raise`)' \
		--expect 'echo-client: params of 65537 bytes: TooLarge' \
		--expect 'echo-client: echo of 1000 bytes into a 64-byte results buffer: Overflow' \
		--expect 'echo-client: echo after the refusals: ok' \
		--expect 'echo-client: unanswered call timed out after 100 ms' \
		--expect 'ipc: echo-client is blocked on an unanswered call; killing echo-server' \
		--expect 'echo-client: call to a killed server completed with Disconnected' \
		--expect 'echo-client: new call to a killed server failed with Disconnected' \
		--expect-log 're:.* info mem: heap grew to [0-9]+ KiB' \
		--expect-log 're:.* info proc: echo-server \(pid [0-9]+\) killed' \
		--expect-log 're:.* info proc: echo-client \(pid [0-9]+\) exited with code 0' \
		--expect 'ipc: exit of echo-server: code -9' \
		--expect 'ipc: exit of echo-client: code 0' \
		--expect 'ipc: all 49 cases gave their named result' \
		--expect 'init: ipc exited with code 0' \
		--expect 'init: exited with code 0' \
		--exit success

run-leak: kernel harness
	@$(call proof-iso,leak,harness init=leak:console$(comma)spawner$(comma)sysinfo$(comma)timer$(comma)threads$(comma)ipc)
	@$(HARNESS) --name leak --image $(PROOF_ISOS)/leak.iso $(USER_QEMU) --smp 2 --mem 256M --timeout 180 \
		--expect 're:leak: before: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 're:leak: after 1000 spawn/exit cycles: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 'leak: no frame and no heap byte lost' \
		--expect 're:leak: before: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 're:leak: after 1000 thread spawn/join cycles: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 'leak: no frame and no heap byte lost' \
		--expect 're:leak: before: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 're:leak: after 1000 spawn/exit with pending sleeps cycles: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 'leak: no frame and no heap byte lost' \
		--expect 're:leak: before: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 're:leak: after 1000 spawn/exit with a self-referencing endpoint cycles: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 'leak: no frame and no heap byte lost' \
		--expect 're:leak: before: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 're:leak: after 5000 IPC, transfer, notification and revocation cycles: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 'leak: no frame and no heap byte lost' \
		--expect 'init: leak exited with code 0' \
		--exit success

# A process that takes everything its resource profile allows, on every
# path, gets a named error each time and leaves nothing behind; its
# neighbour keeps answering (demos/proofs/src/bin/exhaust.rs).
run-exhaust: kernel harness
	@$(call proof-iso,exhaust,harness init=exhaust:console$(comma)spawner$(comma)sysinfo$(comma)timer$(comma)ipc$(comma)vm$(comma)threads)
	@$(HARNESS) --name exhaust --image $(PROOF_ISOS)/exhaust.iso $(USER_QEMU) --smp 2 --mem 256M --timeout 120 \
		--fail-on 'exhaust: mismatch' --fail-on 'exhaust: lost' \
		--expect 'init: starting exhaust with 7 cap(s)' \
		--expect 'exhaust: a hog asking for 2^40 frames: QuotaExceeded' \
		--expect 'exhaust: a hog asking for 33 threads: AppError 2' \
		--expect 'exhaust: map of 256 MiB at once: QuotaExceeded' \
		--expect 'exhaust: 1 MiB maps until refused: QuotaExceeded' \
		--expect 're:exhaust: [0-9]+ MiB mapped before the refusal' \
		--expect 'exhaust: 64 KiB call with every frame taken: queued, then Disconnected' \
		--expect 'exhaust: calls on an endpoint nobody serves: 64 queued, then Overflow' \
		--expect 'exhaust: 64 KiB calls until refused: QuotaExceeded' \
		--expect 're:exhaust: [0-9]+ calls of 64 KiB were queued before the refusal' \
		--expect 'exhaust: notification waits until refused: 100 waiting, then QuotaExceeded' \
		--expect 'exhaust: minted caps until refused: QuotaExceeded' \
		--expect 'exhaust: threads until refused: QuotaExceeded' \
		--expect 'exhaust: children until refused: QuotaExceeded' \
		--expect 're:exhaust: before: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 're:exhaust: after 100 rounds: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 'exhaust: no frame and no heap byte lost' \
		--expect 're:exhaust: echo-server answered [0-9]+ calls while the hogs ran' \
		--expect 'exhaust: every refusal was named' \
		--expect 'init: exhaust exited with code 0' \
		--exit success

# Benchmarks print figures measured inside the guest; they are not timed
# tests. -icount makes the TSC count guest instructions, so runs repeat.
BENCH_QEMU := -icount shift=0,sleep=off
bench: kernel harness
	@$(call proof-iso,bench,harness init=bench:console$(comma)spawner$(comma)timer$(comma)ipc)
	@echo "==> bench: QEMU TCG $(BENCH_QEMU), 1 CPU; figures are guest TSC ticks"
	@$(HARNESS) --name bench --image $(PROOF_ISOS)/bench.iso --smp 1 --mem 256M --timeout 300 \
		--qemu-arg -icount --qemu-arg shift=0,sleep=off \
		--expect 're:bench: NOP, 1 per cap_enter: [0-9]+ cycles/op' \
		--expect 're:bench: NOP, 64 per cap_enter: [0-9]+ cycles/op' \
		--expect 're:bench: null CALL \(Timer.now\), 1 per cap_enter: [0-9]+ cycles/call' \
		--expect 're:bench: null CALL \(Timer.now\), 64 per cap_enter: .*' \
		--expect 're:bench: where a batched CALL goes: .*' \
		--expect 're:bench: IPC round trip \(CALL, peer RECV\+RETURN, completion\), 1 CPU: [0-9]+ cycles' \
		--expect 're:bench: spawn\+wait of nop: [0-9]+ cycles' \
		--exit success
	@grep -h '^bench:' target/proofs/bench/com1.log
	@$(call proof-iso,scale,harness init=scale:$(SCHED_CAPS))
	@echo "==> bench: scale, QEMU TCG multi-threaded (no -icount, one host thread per vCPU); figures are guest TSC"
	@for smp in 1 2; do \
		$(HARNESS) --name scale-smp$$smp --image $(PROOF_ISOS)/scale.iso $(USER_QEMU) --smp $$smp --mem 256M --timeout 300 \
			--expect 're:scale: sched: scale: .*speedup [0-9.]+x' --expect 'scale: sched: all 1 checks passed' --exit success >/dev/null || exit 1; \
		echo "bench: scale, $$smp CPU(s): $$(grep -h '^scale: sched: scale:' target/proofs/scale-smp$$smp/com1.log | sed 's/^scale: sched: scale: //')"; \
	done

# The boot manifest: the default system boots to the login; a provider's
# export reaches a consumer; a crashing service is restarted per policy and
# given up on; a damaged manifest.bin stops init with a named error.
run-manifest: kernel harness mkmanifest
	@$(call manifest-of,system.cue,default)
	@$(call manifest-of,tools/proofs/manifests/services.cue,services)
	@$(call manifest-of,tools/proofs/manifests/crash.cue,crash)
	@capnp decode --short schema/capos.capnp SystemManifest < target/manifests/services/manifest.bin \
		| grep -qF '(name = "greeter", source = (service = (service = "provider", export = "greeter")))' \
		|| { echo "proof manifest: FAIL: capnp decode does not show the greeter grant"; exit 1; }
	@tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/manifest-default.iso "harness" $(MODULES) target/manifests/default/manifest.bin
	@$(HARNESS) --name manifest-default --image $(PROOF_ISOS)/manifest-default.iso $(USER_QEMU) --smp 2 --mem 256M \
		--expect 'Welcome to capOS' \
		--expect 'init: manifest: 4 service(s), start order audit, credstore, sessions, login' \
		--expect 'init: starting login (binary login) with caps terminal, sysinfo, sessions, broker' \
		--expect 'capOS first boot: no account exists yet. Set up the operator account.' \
		--exit none
	@tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/manifest-services.iso "harness" $(MODULES) target/manifests/services/manifest.bin
	@$(HARNESS) --name manifest-services --image $(PROOF_ISOS)/manifest-services.iso $(USER_QEMU) --smp 2 --mem 256M \
		--expect 'capOS manifest proof' \
		--expect 'init: manifest: 2 service(s), start order provider, consumer' \
		--expect 'init: starting provider (binary provider) with caps console, ipc, exporter' \
		--expect 'init: provider exported greeter' \
		--expect 'init: starting consumer (binary consumer) with caps console, greeter' \
		--expect 'consumer: greeter answered: hello from consumer' \
		--expect 'init: consumer exited with code 0' \
		--expect-log 're:.* info manifest: host name capos-proof' \
		--exit none
	@tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/manifest-crash.iso "harness" $(MODULES) target/manifests/crash/manifest.bin
	@$(HARNESS) --name manifest-crash --image $(PROOF_ISOS)/manifest-crash.iso $(USER_QEMU) --smp 2 --mem 256M \
		--expect 'init: manifest: 2 service(s), start order provider, crasher' \
		--expect 'init: provider exported greeter' \
		--expect 'init: starting crasher (binary crasher) with caps console' \
		--expect 'init: crasher failed: exit code -270 (page fault)' \
		--expect 'init: restarting crasher in 50 ms (restart 1 of 2)' \
		--expect 'init: starting crasher (binary crasher) with caps console' \
		--expect 'init: crasher failed: exit code -270 (page fault)' \
		--expect 'init: restarting crasher in 100 ms (restart 2 of 2)' \
		--expect 'init: starting crasher (binary crasher) with caps console' \
		--expect 'init: crasher failed: exit code -270 (page fault)' \
		--expect 'init: crasher failed 3 time(s), restart limit 2 reached; giving up' \
		--exit none
	@mkdir -p target/manifests/truncated target/manifests/flipped
	@head -c 100 target/manifests/services/manifest.bin > target/manifests/truncated/manifest.bin
	@python3 -c 'import sys; b=bytearray(open(sys.argv[1],"rb").read()); b[4]^=0x80; open(sys.argv[2],"wb").write(b)' \
		target/manifests/services/manifest.bin target/manifests/flipped/manifest.bin
	@for damage in truncated flipped; do \
		tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/manifest-$$damage.iso "harness" $(MODULES) target/manifests/$$damage/manifest.bin || exit 1; \
		$(HARNESS) --name manifest-$$damage --image $(PROOF_ISOS)/manifest-$$damage.iso $(USER_QEMU) --smp 2 --mem 256M \
			--expect-log 're:.* warn manifest: kernel parameters unusable \(.*\); using defaults' \
			--expect 're:init: manifest rejected: manifest: not a SystemManifest: .*' \
			--expect 'init: halting: nothing started' \
			--expect 'init: exited with code 2' \
			--exit failure || exit 1; \
	done

# Resource limits from the manifest: services started with spawnLimited work;
# one asking for more than init has left fails with QuotaExceeded, is retried
# per its policy and given up on, and the next service still starts.
run-quota: kernel harness mkmanifest
	@$(call manifest-of,tools/proofs/manifests/quota.cue,quota)
	@tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/manifest-quota.iso "harness" $(MODULES) target/manifests/quota/manifest.bin
	@$(HARNESS) --name manifest-quota --image $(PROOF_ISOS)/manifest-quota.iso $(USER_QEMU) --smp 2 --mem 256M \
		--expect 'init: manifest: 3 service(s), start order provider, hog, consumer' \
		--expect 'init: starting provider (binary provider) with caps console, ipc, exporter; limits frames 8192, kernelBytes 4194304, threads 4, caps 16, openCalls 256' \
		--expect 'init: provider exported greeter' \
		--expect 'init: starting hog (binary consumer) with caps console, greeter; limits frames 268435456, kernelBytes 16777216, threads 32, caps 64, openCalls 4096' \
		--expect 'init: cannot start hog: QuotaExceeded (a resource profile limit was reached)' \
		--expect 'init: restarting hog in 10 ms (restart 1 of 1)' \
		--expect 'init: starting hog (binary consumer) with caps console, greeter; limits frames 268435456, kernelBytes 16777216, threads 32, caps 64, openCalls 4096' \
		--expect 'init: cannot start hog: QuotaExceeded (a resource profile limit was reached)' \
		--expect 'init: hog failed 2 time(s), restart limit 1 reached; giving up' \
		--expect 'init: starting consumer (binary consumer) with caps console, greeter; limits frames 4096, kernelBytes 16777216, threads 4, caps 8, openCalls 4096' \
		--expect 'consumer: greeter answered: hello from consumer' \
		--expect 'init: consumer exited with code 0' \
		--fail-on 'init: hog exited' --fail-on 're:init: hog failed: .*' \
		--fail-on 'consumer: greeter call failed' \
		--exit none

# The terminal line discipline on COM1, driven as a person types: editing
# keys, cursor movement, history, Ctrl-C, UTF-8, invalid UTF-8, a password
# read without echo (it must never appear on either port) and a line over
# the limit.
LONG_LINE := $(shell python3 -c 'print("a" * 5000, end="")')
# The operator's path on the default system (system.cue), driven on COM1 as
# a person types: first-boot setup, every shell command, a program run with
# explicit grants, Ctrl-C ending a foreground program, a background program that keeps a session cap past
# logout (its next call fails with Revoked: keeper exits 0), hostile input
# (a 64 KiB line, control characters, invalid UTF-8, Ctrl-C and a serial
# break inside a password), a wrong password (denied after the delay, audited), login with
# the new password, an anonymous session without the operator's caps. The
# password must never appear on COM1 or COM2.
SHELL_PASSWORD := correct-horse-42
HUGE_LINE := $(shell python3 -c 'print("x" * 65536, end="")')
run-shell: kernel harness mkmanifest
	@$(call manifest-of,system.cue,shell)
	@tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/shell.iso "harness" $(MODULES) target/manifests/shell/manifest.bin
	@$(HARNESS) --name shell --image $(PROOF_ISOS)/shell.iso $(USER_QEMU) --smp 2 --mem 512M --timeout 30 \
		--fail-on '$(SHELL_PASSWORD)' \
		--expect 'capOS first boot: no account exists yet. Set up the operator account.' \
		--send '\r' --send '$(SHELL_PASSWORD)\r' --send '$(SHELL_PASSWORD)-typo\r' \
		--expect 'login: the passwords differ; try again' \
		--send '\r' --send 'short\r' --send 'short\r' \
		--expect 'login: setup refused: the password is shorter than 8 bytes' \
		--send '\r' --send '$(SHELL_PASSWORD)\r' --send '$(SHELL_PASSWORD)\r' \
		--expect 'login: operator account operator created' \
		--expect 'capOS shell: type help for the commands' \
		--send 'help\r' --expect 'help      list the commands, or explain one' \
		--expect 're:^exit +the same as logout$$' \
		--send 'caps\r' --expect 're:^audit +AuditReader$$' --expect 're:^processes +ProcessTable$$' \
		--expect 're:^spawner +ProcessSpawner$$' --expect 're:^terminal +TerminalSession$$' \
		--send 'whoami\r' --expect 'operator (profile operator)' \
		--send 'session\r' --expect 're:^principal +operator$$' --expect 're:^auth +password$$' \
		--send 'ps\r' --expect 're:^ *PID +PPID +STATE +CPU +NAME$$' --expect 're:^ +1 +0 +blocked +[0-9.]+m?s +init$$' \
		--expect 're:^ +[0-9]+ +[0-9]+ +running +[0-9.]+m?s +capos-shell$$' \
		--send 'date\r' --expect 're:^20[2-9][0-9]-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] UTC$$' \
		--send 'hostname\r' --expect 'capos' \
		--send 'uptime\r' --expect 're:^up ([0-9]+[hm] )*[0-9]+s$$' \
		--send 'log 5\r' --expect 're:^\[[0-9.]+\] info audit: #2 setup principal=operator session=1 first operator account created; profile operator$$' \
		--send 'audit 3\r' --expect 're:^#3 .* UTC shell operator \(session 1\): capos-shell \(pid [0-9]+\) with terminal,session,console,.*$$' \
		--send 'echo hello,   world\r' --expect 'hello, world' \
		--send 'clear\r' \
		--send 'run -g console -g sysinfo -g clock -g timer -g log hello\r' \
		--expect 're:^hello: capOS [0-9.]+ on capos, 2 CPU\(s\), [0-9]+ MiB total$$' \
		--expect 're:^hello \(pid [0-9]+\) exited with code 0$$' \
		--send 'run -g console hello\r' --expect 're:^hello \(pid [0-9]+\) exited with code 2$$' \
		--send 'run -g nosuch hello\r' --expect 'run: this session has no nosuch cap to grant' \
		--send 'frobnicate\r' --expect 'shell: unknown command: frobnicate (try help)' \
		--send 'kill abc\r' --expect 'kill: bad pid abc (usage: kill <pid|%job>)' \
		--send 'kill 1\r' --expect 're:^kill: .*init.*$$' \
		--send '$(HUGE_LINE)\r' --expect '(line too long: at most 1024 bytes)' \
		--expect 'shell: line too long (limit 1024 bytes)' \
		--send '\xff\xfe\r' --expect 'shell: the line is not valid UTF-8; ignored' \
		--send '\x01\x02\x1b[Z\x7fecho ctl\r' --expect 'ctl' \
		--send 'run -g console -g timer keeper\r' --expect 'keeper: tick 2' --send '\x03' \
		--expect 're:^keeper \(pid [0-9]+\) (was )?killed$$' \
		--send 'run -g console -g sysinfo -g clock -g timer -g log hello\r' \
		--expect 're:^hello \(pid [0-9]+\) exited with code 0$$' \
		--send 'run -g console -g timer keeper &\r' --expect 're:^(.*\$$ )?keeper: tick 2$$' \
		--send 'logout\r' --expect 're:^\[1\] keeps running without this session.s caps: keeper \(pid [0-9]+\)$$' \
		--expect 'logged out' \
		--expect-log 're:.* audit: #[0-9]+ logout principal=operator session=1 logout; 11 cap\(s\) revoked$$' \
		--expect-log 're:.* proc: keeper \(pid [0-9]+\) exited with code 0$$' \
		--send 'operator\r' --send 'not-$(SHELL_PASSWORD)\r' --expect 'Login incorrect' \
		--expect-log 're:.* audit: #[0-9]+ login-failed principal=operator session=0 wrong name or password \(failure 1 in a row\); answered and next attempt after 1000 ms$$' \
		--send 'operator\r' --send 'corr\x03' --expect 'Password: ^C' \
		--send 'operator\r' --expect 'capos login: operator' --send 'corr\B' \
		--expect 'Password: ^C' \
		--send '\x15operator\r' --send '$(SHELL_PASSWORD)\r' \
		--expect 'capOS shell: type help for the commands' \
		--send 'whoami\r' --expect 'operator (profile operator)' \
		--send 'audit 2\r' --expect 're:^#[0-9]+ .* UTC login operator \(session 2\): profile operator$$' \
		--send 'exit\r' --expect 'logged out' \
		--send 'anonymous\r' --expect 'capOS shell: type help for the commands' \
		--send 'whoami\r' --expect 'anonymous (profile anonymous)' \
		--send 'caps\r' --expect 're:^clock +WallClock$$' --expect 're:^session +UserSession$$' \
		--expect 're:^sysinfo +SystemInfo$$' --expect 're:^terminal +TerminalSession$$' --expect 're:^timer +Timer$$' \
		--send 'log\r' --expect 'log: this session has no log_reader cap' \
		--send 'ps\r' --expect 'ps: this session has no processes cap' \
		--send 'run hello\r' --expect 're:^run: .*spawner.*$$' \
		--send 'logout\r' --expect 'logged out' \
		--expect-log 're:.* audit: #[0-9]+ logout principal=anonymous session=3 logout; 5 cap\(s\) revoked$$' \
		--exit none

# The identity services as a hostile client meets them (authprobe), on the
# default system with a seeded operator account (verifier from mkverifier):
# delayed denials, named errors, anonymous session and its end; then the
# seeded account logs in on COM1. The test password must never appear on
# COM1 or COM2.
AUTH_PASSWORD := tr0ub4dor-and-3
run-auth: kernel harness mkmanifest
	@printf '%s\n' '$(AUTH_PASSWORD)' | tools/proofs/auth-manifest.sh target/proofs/auth-manifest
	@mkdir -p target/manifests/auth
	@MKMANIFEST=$(MKMANIFEST) tools/manifest.sh target/proofs/auth-manifest/system.cue \
		target/manifests/auth/manifest.bin $(BINARY_LIST)
	@tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/auth.iso "harness" $(MODULES) target/manifests/auth/manifest.bin
	@$(HARNESS) --name auth --image $(PROOF_ISOS)/auth.iso $(USER_QEMU) --smp 2 --mem 512M --timeout 60 \
		--fail-on '$(AUTH_PASSWORD)' \
		--expect 'init: starting authprobe (binary authprobe) with caps sessions, broker, timer, console' \
		--expect 're:(capos login: )?authprobe: wrong password 1: error 1: login incorrect after >= 1000 ms \(delayed\)' \
		--expect 'authprobe: wrong password 2: error 1: login incorrect after >= 2000 ms (delayed)' \
		--expect 'authprobe: unknown account: error 1: login incorrect' \
		--expect 'authprobe: setup with an account present: error 3: setup is over: an account exists' \
		--expect 'authprobe: 300-byte name: error 1: a name or password of 300 bytes is over 256' \
		--expect 'authprobe: malformed login params: Malformed (a field holds a value the ABI does not allow)' \
		--expect 'authprobe: method 9: BadMethod (interface has no method with this ordinal)' \
		--expect 'authprobe: launchShell with no caps: error 7: launchShell takes two caps (a session, a terminal), got 0' \
		--expect 'authprobe: launchShell with a timer as the session: error 7: the cap sent is not a session: call raised exception 2: the cap sent (Timer) was not minted from this endpoint' \
		--expect 'authprobe: profileCaps of the broker cap itself: error 7: the cap sent is not a session' \
		--expect 'authprobe: anonymous session 1: principal anonymous, profile anonymous, auth None' \
		--expect 'authprobe: anonymous profile caps: sysinfo,clock,timer' \
		--expect 'authprobe: logout: ok' \
		--expect 'authprobe: info after logout: error 4: session 1 has ended' \
		--expect 'authprobe: logout again: error 4: session 1 has ended' \
		--expect 'authprobe: profileCaps of the ended session: error 4: session 1 has ended' \
		--expect 'authprobe: done' \
		--send 'operator\r' --send '$(AUTH_PASSWORD)\r' \
		--expect 'capOS shell: type help for the commands' \
		--send 'whoami\r' --expect 'operator (profile operator)' \
		--send 'session\r' --expect 're:^auth +password$$' \
		--send 'logout\r' --expect 'logged out' \
		--expect-log 're:.* audit: #1 login-failed principal=operator session=0 wrong name or password \(failure 1 in a row\); answered and next attempt after 1000 ms' \
		--expect-log 're:.* audit: #2 login-failed principal=operator session=0 .*after 2000 ms' \
		--expect-log 're:.* audit: #4 setup-refused principal=x session=0 an account exists already' \
		--expect-log 're:.* audit: #5 anonymous principal=anonymous session=1 profile anonymous' \
		--expect-log 're:.* audit: #6 logout principal=anonymous session=1 logout; 0 cap\(s\) revoked' \
		--exit none

run-terminal: kernel harness
	@$(call proof-iso,terminal,harness init=term:terminal$(comma)console)
	@$(HARNESS) --name terminal --image $(PROOF_ISOS)/terminal.iso $(USER_QEMU) --smp 2 --mem 256M \
		--fail-on 's3cret' \
		--expect 'init: starting term with 2 cap(s)' \
		--send 'hello\r' --expect 'term: got "hello" (5 bytes)' \
		--send 'abc\x7f\x7fx\r' --expect 'term: got "ax" (2 bytes)' \
		--send 'abc\x15xyz\r' --expect 'term: got "xyz" (3 bytes)' \
		--send 'abcd\x1b[D\x1b[DXY\r' --expect 'term: got "abXYcd" (6 bytes)' \
		--send 'oops\x03' --expect 'term: cancelled' \
		--send '\x1b[A\x1b[A\r' --expect 'term: got "xyz" (3 bytes)' \
		--send 'h\xc3\xa9llo\r' --expect 'term: got "héllo" (6 bytes)' \
		--send '\xff\xfe\r' --expect 'term: invalid UTF-8' \
		--send 'password\r' --send 's3cret\r' --expect 'term: password has 6 bytes' \
		--send '$(LONG_LINE)\r' --expect '(line too long: at most 4096 bytes)' --expect 'term: too long' \
		--send 'after\r' --expect 'term: got "after" (5 bytes)' \
		--send 'cancel\r' --expect 'term: cancelRead with no read of its own pending: false' \
		--send 'quit\r' --expect 'init: term exited with code 0' \
		--exit success

run-faults: kernel harness
	@$(call proof-iso,pagefault,harness test=pagefault)
	@$(call proof-iso,panic,harness test=panic)
	@$(call proof-iso,stack-overflow,harness test=stack-overflow)
	@tools/proofs/faults.sh $(HARNESS) $(PROOF_ISOS)

# Threads, the runtime's Mutex and Condvar on ParkSpace, timed sleeps from
# threads, and the refusals of ThreadSpawner, ThreadHandle and ParkSpace
# (demos/threads/src/bin/threads.rs), on two CPUs and on one.
THREADS_CAPS := console$(comma)timer$(comma)threads$(comma)park$(comma)vm
THREADS_LINES = \
		--fail-on 'threads: FAILED' --fail-on 'panic' \
		--expect 'init: starting threads with 5 cap(s)' \
		--expect 'threads: 8 threads x 100000 increments under the Mutex: total 800000' \
		--expect "threads: join returns each thread's own value: 8 of 8" \
		--expect 'threads: Condvar handoff of 100 values: all arrived in order' \
		--expect "threads: a thread's relative sleep of 30 ms: woke after at least 30 ms: true" \
		--expect "threads: a thread's sleep until a deadline 30 ms ahead: woke at or after the deadline: true" \
		--expect 'threads: ParkSpace wait on an unmapped address: BadPointer' \
		--expect 'threads: ParkSpace wait on a kernel address: BadPointer' \
		--expect 'threads: ParkSpace wait on a misaligned address: Misaligned' \
		--expect 'threads: ParkSpace wait for a value the word does not hold: ok (Mismatch)' \
		--expect 'threads: ParkSpace wait with a 5 ms timeout: ok (TimedOut)' \
		--expect 'threads: ParkSpace wake with nobody parked: ok (0)' \
		--expect 'threads: spawning threads past the limit of 32: LimitReached after 31 more' \
		--expect 'threads: the waiting threads end once released: 31 joined' \
		--expect 'threads: join of a thread that called thread_exit(42): Ok((42, Returned))' \
		--expect 'threads: joining the same thread twice: BadState' \
		--expect 'threads: spawn with a kernel-half stack: BadPointer' \
		--expect 're:proc: threads \(pid [0-9]+\) thread [0-9]+ killed by page fault \(vector 14\) at rip=0x1000 addr=0x1000' \
		--expect 'threads: a thread entering unmapped code: joined: Ok(Faulted)' \
		--expect 're:proc: threads \(pid [0-9]+\) thread [0-9]+ killed by page fault \(vector 14\) at rip=0x[0-9a-f]+ addr=0x1[0-9a-f]{3}' \
		--expect 'threads: a thread with an unmapped stack: joined: Ok(Faulted)' \
		--expect 'threads: the process goes on after its threads faulted: ok' \
		--expect 're:proc: threads \(pid [0-9]+\) thread [0-9]+ killed by page fault \(vector 14\) at rip=0x[0-9a-f]+ addr=0x1[0-9a-f]{11}' \
		--expect 'threads: a thread reading a page another thread unmapped: Faulted' \
		--expect 'threads: all 20 checks passed' \
		--expect 'threads: exiting with a spinning and a parked thread still running' \
		--expect 'init: threads exited with code 0' \
		--expect 'init: exited with code 0' \
		--exit success
run-threads: kernel harness
	@$(call proof-iso,threads,harness init=threads:$(THREADS_CAPS))
	@$(HARNESS) --name threads-smp2 --image $(PROOF_ISOS)/threads.iso $(USER_QEMU) --smp 2 --mem 256M \
		$(THREADS_LINES)
	@$(HARNESS) --name threads-smp1 --image $(PROOF_ISOS)/threads.iso $(USER_QEMU) --smp 1 --mem 256M \
		$(THREADS_LINES)

# Weighted fair queuing: two CPU-bound threads with weights 1 and 3 on one
# CPU get CPU time 3:1 within 10% (demos/threads/src/lib.rs). Run under
# -icount so guest time counts guest instructions: the ratio of the work
# the threads did does not depend on how busy the host is.
SCHED_CAPS := console$(comma)timer$(comma)threads$(comma)sched
run-fair: kernel harness
	@$(call proof-iso,fair,harness init=fair:$(SCHED_CAPS))
	@$(HARNESS) --name fair --image $(PROOF_ISOS)/fair.iso $(USER_QEMU) --smp 1 --mem 256M --timeout 120 \
		--qemu-arg -icount --qemu-arg shift=0,sleep=off \
		--fail-on 'sched: FAILED' --fail-on 'panic' \
		--expect 'fair: sched: SchedulingPolicy.setWeight of two threads to 1 and 3: ok' \
		--expect 'fair: sched: setWeight 0: AppError' \
		--expect 'fair: sched: setWeight 1025: AppError' \
		--expect 'fair: sched: setWeight without a ThreadHandle: AppError' \
		--expect 'fair: sched: setWeight with a Timer cap instead: AppError' \
		--expect 'fair: sched: cpuStats of cpu 999: AppError (code 1, not found)' \
		--expect 're:fair: sched: work ratio of weights 3:1 on one CPU: [0-9.]+ \(CPU time ratio [0-9.]+\), within 2.7..3.3' \
		--expect 'fair: sched: all 7 checks passed' \
		--expect 'init: exited with code 0' \
		--exit success
	@grep -h '^fair: sched:' target/proofs/fair/com1.log

# Tickless: an idle system takes (almost) no timer interrupts; two threads
# competing for one CPU bring the slice timer back (the count is read
# through SchedulingPolicy.cpuStats).
run-tickless: kernel harness
	@$(call proof-iso,tickless,harness init=tickless:$(SCHED_CAPS))
	@$(HARNESS) --name tickless --image $(PROOF_ISOS)/tickless.iso $(USER_QEMU) --smp 1 --mem 256M \
		--fail-on 'sched: FAILED' --fail-on 'panic' \
		--expect 're:tickless: sched: timer interrupts during an idle second: [0-9]+ on 1 CPU.*' \
		--expect 're:tickless: sched: timer interrupts during 0.5 s of 2 CPU-bound threads on 1 CPU\(s\): [0-9]+ \(at least 20\)' \
		--expect 'tickless: sched: all 2 checks passed' \
		--expect 'init: exited with code 0' \
		--exit success
	@grep -h '^tickless: sched:' target/proofs/tickless/com1.log
	@$(HARNESS) --name tickless-smp2 --image $(PROOF_ISOS)/tickless.iso $(USER_QEMU) --smp 2 --mem 256M \
		--fail-on 'sched: FAILED' --fail-on 'panic' \
		--expect 're:tickless: sched: timer interrupts during an idle second: [0-9]+ on 2 CPU.*' \
		--expect 're:tickless: sched: timer interrupts during 0.5 s of 3 CPU-bound threads on 2 CPU\(s\): [0-9]+ \(at least 20\)' \
		--expect 're:tickless: sched: an idle CPU takes a queued thread from a busy one: threads on cpus .*steals [0-9]+ -> [0-9]+' \
		--expect 'tickless: sched: all 3 checks passed' \
		--expect 'init: exited with code 0' \
		--exit success
	@grep -h '^tickless: sched:' target/proofs/tickless-smp2/com1.log

# A program's text cannot pass for a line the kernel, init or a proof trusts
# (docs/src/testing.md, "Which lines are trusted"): `logforge` writes forged
# lines through Console and LogSink; each must show up escaped inside the
# writer's own line, never as a line of its own; a 64 KiB record is cut.
LOG_FORGE_KERNEL_LINE := \[    1\.000000\] cpu0 info proc: init \(pid 1\) exited with code 0
run-log-forge: kernel harness
	@$(call proof-iso,log-forge,harness init=logforge:console$(comma)log$(comma)log_reader$(comma)timer)
	@$(HARNESS) --name log-forge --image $(PROOF_ISOS)/log-forge.iso $(USER_QEMU) --smp 2 --mem 256M \
		--fail-on 're:hello: done' --fail-on 're:init: hello exited with code 0' \
		--fail-on 're:$(LOG_FORGE_KERNEL_LINE)' --fail-on 'logforge: FAILED' --fail-on 'panic' \
		--expect 'init: starting logforge with 4 cap(s)' \
		--expect 'logforge: init: hello exited with code 0' \
		--expect 'logforge: hello: done' \
		--expect 'logforge: newline\ninit: hello exited with code 0' \
		--expect 'logforge: carriage return\rhello: done' \
		--expect 'logforge: ansi\e[2K\e[1Ginit: hello exited with code 0' \
		--expect 'logforge: crlf\r\nhello: done\r\n' \
		--expect 'logforge: open line \ninit: hello exited with code 0\n' \
		--expect-log 're:.* info log: #[0-9]+ Info logforge: $(LOG_FORGE_KERNEL_LINE)' \
		--expect-log 're:.* info log: #[0-9]+ Info logforge: newline\\n$(LOG_FORGE_KERNEL_LINE)' \
		--expect-log 're:.* info log: #[0-9]+ Info logforge: carriage return\\r$(LOG_FORGE_KERNEL_LINE)' \
		--expect-log 're:.* info log: #[0-9]+ Info logforge: ansi\\e\[1A\\e\[2K$(LOG_FORGE_KERNEL_LINE)' \
		--expect-log 're:.* info log: #[0-9]+ Info logforge: bell\\x07 nul\\x00 del\\x7f csi\\u\{9b\}' \
		--expect-log 're:.* info log: #[0-9]+ Info logforge: x{512}…\(64488 bytes cut\)' \
		--expect 'logforge: stored record: 512 bytes, ends …(64488 bytes cut), no control characters' \
		--expect 're:logforge: still answering: timer [0-9]+ ms after the big record' \
		--expect 'logforge: done' \
		--expect 'init: logforge exited with code 0' \
		--exit success

proofs: run-boot run-serial run-faults run-hello run-isolation run-preempt run-leak run-exhaust run-quota run-hostile run-ipc run-transfer run-notify run-manifest run-terminal run-auth run-shell run-threads run-fair run-tickless run-log-forge

# --- checks -----------------------------------------------------------------

schema: setup
	@echo "==> regenerating capos-schema/src/generated from schema/capos.capnp"
	@$(CARGO) run -q -p capos-tools --bin schema-codegen -- generate

schema-check: setup
	@echo "==> generated code matches schema/capos.capnp"
	@$(CARGO) run -q -p capos-tools --bin schema-codegen -- check

fmt-check: setup
	@echo "==> cargo fmt --check"
	@$(CARGO) fmt --all -- --check

clippy: user
	@echo "==> clippy (host crates)"
	@$(CARGO) clippy -q --all-targets -- -D warnings
	@echo "==> clippy (kernel)"
	@$(KERNEL_CARGO) clippy -q -p capos-kernel --target x86_64-unknown-none --release \
		--target-dir $(KERNEL_DIR) -- -D warnings
	@echo "==> clippy (user programs)"
	@$(USER_CARGO) clippy -q -p capos-rt $(USER_PKGS) --target x86_64-unknown-none \
		--release --target-dir $(USER_DIR) -- -D warnings

host-test: setup
	@echo "==> host tests"
	@$(CARGO) test -q

test: fmt-check schema-check clippy host-test proofs
	@echo "==> all checks passed"

clean:
	@$(CARGO) clean
