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
USER_PROGRAMS := hello template
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
USER_PKGS    := -p capos-init $(addprefix -p ,$(USER_PROGRAMS))
KERNEL_CARGO := CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS="$(KERNEL_FLAGS)" \
	CAPOS_INIT_ELF=$(CURDIR)/$(USER_BIN)/init $(CARGO)
KERNEL_BUILD := $(KERNEL_CARGO) build -p capos-kernel --target x86_64-unknown-none --release \
	--target-dir $(KERNEL_DIR)
MODULES      := $(addprefix $(USER_BIN)/,$(USER_PROGRAMS))

.PHONY: schema schema-check run-hello help setup user kernel iso run test fmt-check clippy host-test proofs clean \
	harness run-boot run-serial run-faults

help:
	@echo "make run      build capOS and boot it in QEMU (COM1 here, COM2 in target/qemu-debug.log)"
	@echo "make test     format check, clippy, host tests and every QEMU proof (what CI runs)"
	@echo "make iso      build $(ISO)"
	@echo "make clean    remove build output"

setup:
	@tools/setup.sh

user: setup
	@echo "==> user programs"
	@$(USER_CARGO) build -p capos-init $(addprefix -p ,$(USER_PROGRAMS)) \
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

run-faults: kernel harness
	@$(call proof-iso,pagefault,harness test=pagefault)
	@$(call proof-iso,panic,harness test=panic)
	@$(call proof-iso,stack-overflow,harness test=stack-overflow)
	@tools/proofs/faults.sh $(HARNESS) $(PROOF_ISOS)

proofs: run-boot run-serial run-faults run-hello

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

clippy: setup
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
