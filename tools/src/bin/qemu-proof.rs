//! `qemu-proof`: boots a capOS image in QEMU and checks its serial output.
//! The interface is documented in `capos_tools::proof`; `qemu-proof --help` prints it.

use std::process::ExitCode;

use capos_tools::proof::{file, parse_args, run, run_file, Command, SuiteError, USAGE};

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                eprintln!("qemu-proof: argument {arg:?} is not valid UTF-8");
                return ExitCode::from(2);
            }
        }
    }
    let config = match parse_args(args) {
        Ok(Command::Run(config)) => config,
        Ok(Command::File(command)) => {
            let proof = match file::load(&command.path) {
                Ok(proof) => proof,
                Err(error) => {
                    eprintln!("qemu-proof: {error}");
                    return ExitCode::from(2);
                }
            };
            if command.check {
                println!("{}: ok ({} run(s))", command.path.display(), proof.runs.len());
                return ExitCode::SUCCESS;
            }
            return match run_file(&proof, &command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(SuiteError::Build(message)) => {
                    println!("{message}");
                    ExitCode::FAILURE
                }
                Err(SuiteError::Failed) => ExitCode::FAILURE,
            };
        }
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("qemu-proof: {error}");
            eprintln!("run `qemu-proof --help` for usage");
            return ExitCode::from(2);
        }
    };

    let report = run(&config, &mut |line| println!("{line}"));
    if report.passed() {
        println!("{}", report.verdict());
        ExitCode::SUCCESS
    } else {
        for line in report.failure_details() {
            eprintln!("{line}");
        }
        println!("{}", report.verdict());
        ExitCode::FAILURE
    }
}
