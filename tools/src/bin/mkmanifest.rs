//! `mkmanifest`: turns the JSON of a system file (`cue export` of
//! `system.cue`, see `tools/cue/export.js`) into the boot module
//! `manifest.bin`, a Cap'n Proto `SystemManifest`; or prints such a module.
//!
//! ```text
//! mkmanifest --json FILE|- --binaries NAME,NAME,... --out manifest.bin
//! mkmanifest --print manifest.bin
//! ```
//!
//! The JSON is checked against every rule of `capos_config::validate`, with
//! the binaries of `--binaries` as the boot package and
//! `capos_config::KERNEL_CAP_SOURCES` as the kernel cap sources. Every broken
//! rule is printed, one per line, on stderr, and nothing is written: exit
//! code 1. Exit code 2 is a usage error.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use capos_config::{decode, encode, from_json, start_order, validate, Context, Manifest};

const USAGE: &str = "\
usage: mkmanifest --json FILE|- --binaries NAME,NAME,... --out manifest.bin
       mkmanifest --print manifest.bin

--json      the manifest as JSON (`-` reads stdin): what tools/cue/export.js prints
--binaries  the binaries of the boot package, comma-separated (may be empty)
--out       where to write the Cap'n Proto SystemManifest
--print     print a SystemManifest as text, with the order init starts services in
";

enum Command {
    Build { json: String, binaries: Vec<String>, out: String },
    Print { path: String },
    Help,
}

fn parse_args(args: Vec<String>) -> Result<Command, String> {
    let mut json = None;
    let mut binaries = None;
    let mut out = None;
    let mut print = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => &mut json,
            "--binaries" => &mut binaries,
            "--out" => &mut out,
            "--print" => &mut print,
            other => return Err(format!("unknown argument `{other}`")),
        };
        let Some(value) = args.next() else {
            return Err(format!("{arg} needs a value"));
        };
        if slot.replace(value).is_some() {
            return Err(format!("{arg} is given twice"));
        }
    }
    match (json, binaries, out, print) {
        (None, None, None, Some(path)) => Ok(Command::Print { path }),
        (Some(json), Some(binaries), Some(out), None) => {
            let binaries = binaries
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(String::from)
                .collect();
            Ok(Command::Build { json, binaries, out })
        }
        (_, _, _, Some(_)) => Err("--print takes no other option".into()),
        (None, ..) => Err("--json is missing".into()),
        (_, None, ..) => Err("--binaries is missing".into()),
        (_, _, None, _) => Err("--out is missing".into()),
    }
}

fn read_json(source: &str) -> Result<String, String> {
    if source == "-" {
        let mut json = String::new();
        io::stdin().read_to_string(&mut json).map_err(|e| format!("stdin: {e}"))?;
        Ok(json)
    } else {
        fs::read_to_string(source).map_err(|e| format!("{source}: {e}"))
    }
}

/// Reads, checks and writes; the lines to print on failure.
fn build(json: &str, binaries: Vec<String>, out: &str) -> Result<Manifest, Vec<String>> {
    let text = read_json(json).map_err(|e| vec![e])?;
    let manifest = from_json(&text).map_err(|e| vec![e.to_string()])?;
    let context = Context::new(binaries);
    validate(&manifest, &context)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let bytes = encode(&manifest);
    // What init will read: decode with its limits and compare.
    match decode(&bytes) {
        Ok(decoded) if decoded == manifest => {}
        Ok(_) => return Err(vec!["manifest: encoding changed the manifest (a bug)".into()]),
        Err(e) => return Err(vec![format!("{e} (the encoded manifest does not decode back)")]),
    }
    if let Some(dir) = Path::new(out).parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
    }
    fs::write(out, &bytes).map_err(|e| vec![format!("{out}: {e}")])?;
    Ok(manifest)
}

fn print(path: &str) -> Result<String, String> {
    let bytes = fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let manifest = decode(&bytes).map_err(|e| format!("{path}: {e}"))?;
    let mut text = manifest.to_string();
    match start_order(&manifest) {
        Ok(order) => {
            let names: Vec<&str> =
                order.iter().map(|&i| manifest.services[i].name.as_str()).collect();
            text.push_str(&format!("start order: {}\n", names.join(", ")));
        }
        Err(cycle) => text.push_str(&format!("start order: none: {cycle}\n")),
    }
    Ok(text)
}

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                eprintln!("mkmanifest: argument {arg:?} is not valid UTF-8");
                return ExitCode::from(2);
            }
        }
    }
    match parse_args(args) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Print { path }) => match print(&path) {
            Ok(text) => {
                // A closed stdout (`| head`) is not an error worth reporting.
                let _ = io::stdout().write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("mkmanifest: {error}");
                ExitCode::FAILURE
            }
        },
        Ok(Command::Build { json, binaries, out }) => match build(&json, binaries, &out) {
            Ok(_) => ExitCode::SUCCESS,
            Err(lines) => {
                for line in lines {
                    eprintln!("{line}");
                }
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("mkmanifest: {error}");
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
