# capOS build, run and test entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := iso

CARGO        ?= cargo
KERNEL_DIR   := target/kernel
KERNEL       := $(KERNEL_DIR)/x86_64-unknown-none/release/capos-kernel
KERNEL_FLAGS := -C relocation-model=static -C code-model=kernel
ISO          := target/capos.iso
HARNESS      := target/release/qemu-proof
PROOF_ISOS   := target/iso
RUN_CMDLINE  ?=
RUN_SMP      ?= 2
RUN_MEM      ?= 512M

# The kernel is built for x86_64-unknown-none in its own target directory so
# its code model never mixes with host tools or (later) user programs.
KERNEL_BUILD := CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(KERNEL_FLAGS)" \
	$(CARGO) build -p capos-kernel --target x86_64-unknown-none --release --target-dir $(KERNEL_DIR)

.PHONY: help setup kernel iso run test fmt-check clippy host-test proofs clean \
	harness run-boot run-serial run-faults

help:
	@echo "make run      build capOS and boot it in QEMU (COM1 here, COM2 in target/qemu-debug.log)"
	@echo "make test     format check, clippy, host tests and every QEMU proof (what CI runs)"
	@echo "make iso      build $(ISO)"
	@echo "make clean    remove build output"

setup:
	@tools/setup.sh

kernel: setup
	@echo "==> kernel"
	@$(KERNEL_BUILD)

iso: kernel
	@echo "==> $(ISO)"
	@tools/mkiso.sh $(KERNEL) $(ISO) "$(RUN_CMDLINE)"

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

proof-iso = tools/mkiso.sh $(KERNEL) $(PROOF_ISOS)/$(1).iso "$(2)"

run-boot: kernel harness
	@$(call proof-iso,boot,harness log=debug no-such-option=1)
	@tools/proofs/boot.sh $(HARNESS) $(PROOF_ISOS)/boot.iso

run-serial: kernel harness
	@$(call proof-iso,serial,harness test=serial-echo)
	@$(HARNESS) --name serial --image $(PROOF_ISOS)/serial.iso --smp 2 --mem 128M \
		--expect 'capOS kernel ready' --send 'hello capOS\r' \
		--expect 'serial: received "hello capOS"' --exit success

run-faults: kernel harness
	@$(call proof-iso,pagefault,harness test=pagefault)
	@$(call proof-iso,panic,harness test=panic)
	@$(call proof-iso,stack-overflow,harness test=stack-overflow)
	@tools/proofs/faults.sh $(HARNESS) $(PROOF_ISOS)

proofs: run-boot run-serial run-faults

# --- checks -----------------------------------------------------------------

fmt-check: setup
	@echo "==> cargo fmt --check"
	@$(CARGO) fmt --all -- --check

clippy: setup
	@echo "==> clippy (host crates)"
	@$(CARGO) clippy -q --all-targets -- -D warnings
	@echo "==> clippy (kernel)"
	@CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(KERNEL_FLAGS)" \
		$(CARGO) clippy -q -p capos-kernel --target x86_64-unknown-none --release \
		--target-dir $(KERNEL_DIR) -- -D warnings

host-test: setup
	@echo "==> host tests"
	@$(CARGO) test -q

test: fmt-check clippy host-test proofs
	@echo "==> all checks passed"

clean:
	@$(CARGO) clean
