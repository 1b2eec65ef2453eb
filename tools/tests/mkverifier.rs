//! `mkverifier`: a verifier for the password on stdin, and named errors.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use auth_core::{Block, Verifier};

const MKVERIFIER: &str = env!("CARGO_BIN_EXE_mkverifier");

fn mkverifier(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(MKVERIFIER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // An argument error ends it before it reads: the pipe may be closed.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn makes_a_verifier_that_verifies() {
    let out = mkverifier(&["--cost", "64,1,1"], "correct horse\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let phc = String::from_utf8(out.stdout).unwrap();
    let phc = phc.trim_end();
    assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
    assert!(!phc.contains("correct"), "the password leaked into {phc}");
    let v = Verifier::parse(phc).unwrap();
    let mut memory = vec![Block::default(); Verifier::blocks(v.cost())];
    assert!(v.verify(b"correct horse", &mut memory).unwrap());
    assert!(!v.verify(b"correct horse\n", &mut memory).unwrap());
    // A fresh salt each time.
    let again = mkverifier(&["--cost", "64,1,1"], "correct horse\n");
    assert_ne!(String::from_utf8(again.stdout).unwrap().trim_end(), phc);
}

#[test]
fn default_cost_is_owasp_argon2id() {
    let out = mkverifier(&[], "correct horse\r\n");
    let phc = String::from_utf8(out.stdout).unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
}

#[test]
fn named_errors() {
    let cases: [(&[&str], &str, &str); 4] = [
        (&[], "short\n", "mkverifier: the password is shorter than 8 bytes\n"),
        (
            &["--cost", "1,2"],
            "long enough\n",
            "mkverifier: --cost \"1,2\": expected M,T,P (e.g. 19456,2,1)\n",
        ),
        (
            &["--cost", "999999,2,1"],
            "long enough\n",
            "mkverifier: cost m=999999,t=2,p=1 is over the limit m<=65536,t<=16,p=1\n",
        ),
        (&["--bogus"], "long enough\n", "mkverifier: unknown argument \"--bogus\"\n"),
    ];
    for (args, stdin, message) in cases {
        let out = mkverifier(args, stdin);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(String::from_utf8_lossy(&out.stderr), message);
    }
}
