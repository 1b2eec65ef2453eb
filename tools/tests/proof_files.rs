//! Every proof file in tools/proofs/ reads without error, names an image for each run, and
//! keeps its steps; a broken copy of one is refused with the file and the step named.

use std::path::{Path, PathBuf};

use capos_tools::proof::file::{load, parse};

fn proof_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proofs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tools/proofs is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_proof_file_parses() {
    let files = proof_files();
    assert!(files.len() >= 10, "expected the proof files, found {files:?}");
    for path in files {
        let proof = match load(&path) {
            Ok(proof) => proof,
            Err(e) => panic!("{e}"),
        };
        assert!(
            proof.script.is_some() || !proof.runs.is_empty(),
            "{}: neither runs nor a script",
            path.display()
        );
        for run in &proof.runs {
            assert!(
                proof.image(&run.image).is_some(),
                "{}: run {}",
                path.display(),
                run.config.name
            );
            assert!(
                run.config.steps.len() >= 2,
                "{}: run {} has no steps",
                path.display(),
                run.config.name
            );
        }
    }
}

#[test]
fn a_broken_copy_is_refused() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("proofs/hello.toml");
    let text = std::fs::read_to_string(&path).expect("hello.toml");
    let broken = text.replacen("{ expect = ", "{ expct = ", 1);
    let error = parse(Path::new("tools/proofs/hello.toml"), &broken).expect_err("refused");
    assert!(
        error.to_string().starts_with("tools/proofs/hello.toml: step 1: unknown key `expct`"),
        "{error}"
    );
}
