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
USER_PROGRAMS := hello template isolation leak nop preempt exhaust bench hostile ipc echo-server echo-client transfer notify sharedbuf provider consumer crasher term capos-shell credstore sessions audit login keeper authprobe threads fair tickless scale logforge devices
ISO          := target/capos.iso
HARNESS      := target/release/qemu-proof
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

.PHONY: mkmanifest manifest run-app schema schema-check bench help setup user kernel iso run test \
	fmt-check clippy host-test proofs clean harness

help:
	@echo "make run      build capOS and boot it in QEMU (COM1 here, COM2 in target/qemu-debug.log)"
	@echo "make run-app APP=name   boot a program of your own (start from demos/template)"
	@echo "make test     format check, clippy, host tests and every QEMU proof (what CI runs)"
	@echo "make run-NAME one QEMU proof, tools/proofs/NAME.toml (RUN=name: one of its runs)"
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
# Each proof is one file, tools/proofs/NAME.toml (docs/src/testing.md): the
# images it boots (kernel command line, boot manifest), the machine and the
# lines it expects, in order. `make run-NAME` hands it to the harness
# (tools/src/bin/qemu-proof.rs), which rebuilds its images with
# tools/mkiso.sh and runs it; `make run-NAME RUN=run-name` runs one of its
# runs. Adding a proof is adding a file.
PROOF_FILES  := $(sort $(wildcard tools/proofs/*.toml))
# Not a proof: figures measured in the guest (`make bench`).
NOT_PROOFS   := bench
# Run first, in this order: when these fail, later failures are noise.
FIRST_PROOFS := boot serial faults hello
ALL_PROOFS   := $(filter-out $(NOT_PROOFS),$(basename $(notdir $(PROOF_FILES))))
PROOFS       := $(foreach p,$(FIRST_PROOFS),$(filter $(p),$(ALL_PROOFS))) \
	$(filter-out $(FIRST_PROOFS),$(ALL_PROOFS))
PROOF_RUN    = MKMANIFEST=$(MKMANIFEST) $(HARNESS) --kernel $(KERNEL) \
	$(addprefix --module ,$(MODULES)) $(if $(RUN),--run $(RUN))

run-%: tools/proofs/%.toml kernel harness mkmanifest
	@$(PROOF_RUN) --proof $<

proofs: $(addprefix run-,$(PROOFS))

# Benchmarks print figures measured inside the guest; they are not timed
# tests (tools/proofs/bench.toml).
bench: run-bench

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
