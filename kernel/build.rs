//! Links the kernel with its own linker script (higher-half image, Multiboot2
//! header first, low boot trampoline) and embeds init.
//!
//! init's ELF comes from `CAPOS_INIT_ELF` (the Makefile builds init first and
//! sets it). Without it the kernel is built with an empty init image and says
//! so at boot; only lint-style builds do that.
use std::path::PathBuf;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=-znoexecstack");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("init.elf");
    println!("cargo:rerun-if-env-changed=CAPOS_INIT_ELF");
    match std::env::var("CAPOS_INIT_ELF") {
        Ok(path) if !path.is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            std::fs::copy(&path, &out)
                .unwrap_or_else(|e| panic!("cannot read init ELF {path}: {e}"));
        }
        _ => std::fs::write(&out, b"").expect("OUT_DIR is writable"),
    }
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
