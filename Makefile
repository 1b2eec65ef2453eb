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
USER_PROGRAMS := hello template isolation leak nop preempt bench hostile
ISO          := target/capos.iso
HARNESS      := target/release/qemu-proof
PROOF_ISOS   := target/iso
comma        := ,
# By default `make run` has init start hello with the caps it uses.
RUN_CMDLINE  ?= init=hello:console$(comma)sysinfo$(comma)clock$(comma)timer$(comma)log
RUN_SMP      ?= 2
RUN_MEM      ?= 512M

# The kernel and user programs are built for x86_64-unknown-none in target
# directories of their own so the two code models never mix (nor with host
# tools). init is embedded in the kernel: build.rs reads CAPOS_INIT_ELF.
USER_CARGO   := CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(USER_FLAGS)" \
	$(CARGO)
USER_PKGS    := -p capos-init -p hello -p template -p proof-programs -p hostile
KERNEL_CARGO := CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(KERNEL_FLAGS)" \
	CAPOS_INIT_ELF=$(CURDIR)/$(USER_BIN)/init $(CARGO)
KERNEL_BUILD := $(KERNEL_CARGO) build -p capos-kernel --target x86_64-unknown-none --release \
	--target-dir $(KERNEL_DIR)
MODULES      := $(addprefix $(USER_BIN)/,$(USER_PROGRAMS))

.PHONY: run-preempt run-app schema schema-check run-hello run-hostile run-isolation run-leak bench help setup user kernel iso run test fmt-check clippy host-test proofs clean \
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

iso: kernel
	@echo "==> $(ISO)"
	@tools/mkiso.sh $(KERNEL) $(ISO) "$(RUN_CMDLINE)" $(MODULES)

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
	@$(call proof-iso,hostile,harness init=hostile:console$(comma)sysinfo$(comma)timer$(comma)log$(comma)spawner)
	@$(HARNESS) --name hostile --image $(PROOF_ISOS)/hostile.iso $(USER_QEMU) --smp 2 --mem 256M \
		--fail-on 'hostile: mismatch' --fail-on 'must never appear' --fail-on 'survived' \
		--expect 'init: starting hostile with 5 cap(s)' \
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
		--expect 'hostile: all 89 cases gave their named error' \
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

run-leak: kernel harness
	@$(call proof-iso,leak,harness init=leak:console$(comma)spawner$(comma)sysinfo$(comma)timer)
	@$(HARNESS) --name leak --image $(PROOF_ISOS)/leak.iso $(USER_QEMU) --smp 2 --mem 256M --timeout 120 \
		--expect 're:leak: before: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 're:leak: after 1000 spawn/exit cycles: [0-9]+ free frames, kernel heap [0-9]+ bytes in use' \
		--expect 'leak: no frame and no heap byte lost' \
		--expect 'init: leak exited with code 0' \
		--exit success

# Benchmarks print figures measured inside the guest; they are not timed
# tests. -icount makes the TSC count guest instructions, so runs repeat.
BENCH_QEMU := -icount shift=0,sleep=off
bench: kernel harness
	@$(call proof-iso,bench,harness init=bench:console$(comma)spawner$(comma)timer)
	@echo "==> bench: QEMU TCG $(BENCH_QEMU), 1 CPU; figures are guest TSC ticks"
	@$(HARNESS) --name bench --image $(PROOF_ISOS)/bench.iso --smp 1 --mem 256M --timeout 300 \
		--qemu-arg -icount --qemu-arg shift=0,sleep=off \
		--expect 're:bench: NOP, 1 per cap_enter: [0-9]+ cycles/op' \
		--expect 're:bench: NOP, 64 per cap_enter: [0-9]+ cycles/op' \
		--expect 're:bench: null CALL \(Timer.now\), 1 per cap_enter: [0-9]+ cycles/call' \
		--expect 're:bench: null CALL \(Timer.now\), 64 per cap_enter: .*' \
		--expect 're:bench: where a batched CALL goes: .*' \
		--expect 're:bench: spawn\+wait of nop: [0-9]+ cycles' \
		--exit success
	@grep -h '^bench:' target/proofs/bench/com1.log

run-faults: kernel harness
	@$(call proof-iso,pagefault,harness test=pagefault)
	@$(call proof-iso,panic,harness test=panic)
	@$(call proof-iso,stack-overflow,harness test=stack-overflow)
	@tools/proofs/faults.sh $(HARNESS) $(PROOF_ISOS)

proofs: run-boot run-serial run-faults run-hello run-isolation run-preempt run-leak run-hostile

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
