//! mkverifier: makes a capOS password verifier for a manifest account.
//!
//! ```text
//! mkverifier [--cost M,T,P] < password-file
//! ```
//!
//! Reads the password from the first line of standard input (so it never
//! appears in a command line or shell history), checks it against the
//! rules capOS applies to new passwords, hashes it with Argon2id and a
//! random 16-byte salt (from /dev/urandom), and prints the PHC string for
//! `auth: accounts: <name>: verifier:` in system.cue. `--cost` sets memory
//! in KiB, passes and lanes (default 19456,2,1).

use std::io::{BufRead, Read};
use std::process::ExitCode;

use auth_core::{check_new_password, Block, Cost, Verifier, DEFAULT_COST, SALT_LEN};

fn parse_cost(s: &str) -> Result<Cost, String> {
    let parts: Vec<&str> = s.split(',').collect();
    let [m, t, p] = parts.as_slice() else {
        return Err(format!("--cost {s:?}: expected M,T,P (e.g. 19456,2,1)"));
    };
    let num = |v: &str, what: &str| {
        v.trim().parse::<u32>().map_err(|_| format!("--cost: {what} {v:?} is not a number"))
    };
    Ok(Cost {
        memory_kib: num(m, "memory")?,
        iterations: num(t, "passes")?,
        parallelism: num(p, "lanes")?,
    })
}

fn run() -> Result<String, String> {
    let mut cost = DEFAULT_COST;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--cost" => {
                cost = parse_cost(&args.next().ok_or("--cost needs a value")?)?;
            }
            "-h" | "--help" => {
                return Err("usage: mkverifier [--cost M,T,P] < password-file".into());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from stdin: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    check_new_password(password).map_err(|e| e.to_string())?;
    let mut salt = [0u8; SALT_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    let mut memory = vec![Block::default(); Verifier::blocks(cost)];
    let verifier =
        Verifier::make(password.as_bytes(), &salt, cost, &mut memory).map_err(|e| e.to_string())?;
    Ok(verifier.to_phc())
}

fn main() -> ExitCode {
    match run() {
        Ok(phc) => {
            println!("{phc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mkverifier: {e}");
            ExitCode::FAILURE
        }
    }
}
