//! `schema-codegen`: generates the Rust code for `schema/capos.capnp`.
//!
//! ```text
//! schema-codegen generate [--root DIR]   write capos-schema/src/generated/*
//! schema-codegen check [--root DIR]      exit 1 if the committed files are stale
//! ```
//!
//! `DIR` is the repository root (default: the one this tool was built from).
//! Needs `capnp` (Debian's `capnproto`) and `rustfmt` on `PATH`.

use std::path::PathBuf;
use std::process::ExitCode;

use capos_tools::codegen;

const USAGE: &str = "usage: schema-codegen <generate|check> [--root DIR]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut command = None;
    let mut root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--root" => match args.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage_error("--root needs a directory"),
            },
            "generate" | "check" if command.is_none() => command = Some(arg),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => return usage_error(&format!("unexpected argument `{other}`")),
        }
    }
    let Some(command) = command else {
        return usage_error("missing command");
    };

    let files = match codegen::generate(&root) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("schema-codegen: {e}");
            return ExitCode::FAILURE;
        }
    };
    if command == "generate" {
        return match codegen::write(&root, &files) {
            Ok(written) if written.is_empty() => {
                println!("schema-codegen: generated code was already up to date");
                ExitCode::SUCCESS
            }
            Ok(written) => {
                for path in written {
                    println!("schema-codegen: wrote {}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("schema-codegen: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let stale = codegen::stale(&root, &files);
    if stale.is_empty() {
        println!("schema-codegen: generated code is up to date");
        return ExitCode::SUCCESS;
    }
    for path in stale {
        eprintln!("generated code is stale: run `make schema` ({} differs)", path.display());
    }
    ExitCode::FAILURE
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("schema-codegen: {msg}\n{USAGE}");
    ExitCode::from(2)
}
