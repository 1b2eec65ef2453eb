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
USER_PROGRAMS := hello template isolation leak nop bench
ISO          := target/capos.iso
HARNESS      := target/release/qemu-proof
PROOF_ISOS   := target/iso
RUN_CMDLINE  ?=
RUN_SMP      ?= 2
RUN_MEM      ?= 512M

# The kernel and user programs are built for x86_64-unknown-none in target
# directories of their own so the two code models never mix (nor with host
# tools). init is embedded in the kernel: build.rs reads CAPOS_INIT_ELF.
USER_CARGO   := CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(USER_FLAGS)" \
	$(CARGO)
USER_PKGS    := -p capos-init -p hello -p template -p proof-programs
KERNEL_CARGO := CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(KERNEL_FLAGS)" \
	CAPOS_INIT_ELF=$(CURDIR)/$(USER_BIN)/init $(CARGO)
KERNEL_BUILD := $(KERNEL_CARGO) build -p capos-kernel --target x86_64-unknown-none --release \
	--target-dir $(KERNEL_DIR)
MODULES      := $(addprefix $(USER_BIN)/,$(USER_PROGRAMS))

.PHONY: schema schema-check run-hello run-isolation run-leak bench help setup user kernel iso run test fmt-check clippy host-test proofs clean \
	harness run-boot run-serial run-faults

help:
	@echo "make run      build capOS and boot it in QEMU (COM1 here, COM2 in target/qemu-debug.log)"
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

run: iso
	@echo "==> booting capOS in QEMU (Ctrl-A X quits; debug log: target/qemu-debug.log)"
	@qemu-system-x86_64 -machine q35 -cpu qemu64 -smp $(RUN_SMP) -m $(RUN_MEM) \
		-display none -no-reboot -serial mon:stdio -serial file:target/qemu-debug.log \
		-cdrom $(ISO)

harness: setup
	@$(CARGO) build -q -p capos-tools --release --bin qemu-proof

# --- proofs ---------------------------------------------------------------
# Each proof boots an ISO whose kernel command line selects what to do, and
# the harness (tools/src/bin/qemu-proof.rs) checks exact lines on COM1/COM2.

$(PROOF_ISOS)/%.iso: kernel
	@true

comma := ,
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
	@$(HARNESS) --name hello --image $(PROOF_ISOS)/hello.iso --smp 2 --mem 256M \
		--expect 'init: starting hello with 5 cap(s)' \
		--expect 'hello: hello from user space' \
		--expect 're:hello: capOS [0-9.]+ on capos, 2 CPU\(s\), [0-9]+ MiB total' \
		--expect 're:hello: wall clock 20[2-9][0-9]-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] UTC' \
		--expect 'hello: timer slept 20 ms (measured at least 20 ms)' \
		--expect 'hello: done' \
		--expect 'init: hello exited with code 0' \
		--expect 'init: exited with code 0' \
		--expect-log 're:.* info log: #1 Info hello: hello wrote to the log' \
		--exit success

run-isolation: kernel harness
	@$(call proof-iso,isolation,harness init=isolation:console$(comma)spawner$(comma)vm)
	@$(HARNESS) --name isolation --image $(PROOF_ISOS)/isolation.iso --smp 2 --mem 256M \
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

run-leak: kernel harness
	@$(call proof-iso,leak,harness init=leak:console$(comma)spawner$(comma)sysinfo$(comma)timer)
	@$(HARNESS) --name leak --image $(PROOF_ISOS)/leak.iso --smp 2 --mem 256M --timeout 120 \
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
		--expect 're:bench: spawn\+wait of nop: [0-9]+ cycles' \
		--exit success
	@grep -h '^bench:' target/proofs/bench/com1.log

run-faults: kernel harness
	@$(call proof-iso,pagefault,harness test=pagefault)
	@$(call proof-iso,panic,harness test=panic)
	@$(call proof-iso,stack-overflow,harness test=stack-overflow)
	@tools/proofs/faults.sh $(HARNESS) $(PROOF_ISOS)

proofs: run-boot run-serial run-faults run-hello run-isolation run-leak

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
