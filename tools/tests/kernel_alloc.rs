//! A review check on the kernel's system-call paths: a sized allocation
//! (its size may come from a user) must either be fallible or say what
//! bounds it. Every match of [`SIZED`] in [`FILES`] needs `try_reserve` on
//! the same line or one of the [`WINDOW`] lines above it, or an `// alloc:`
//! comment there naming the bound (a fixed size, a count the account
//! limits, the kernel's own data). New code that allocates a user-chosen
//! size infallibly fails `make test` here and is caught in review.

use std::fs;
use std::path::{Path, PathBuf};

/// Kernel sources on system-call and completion paths.
const FILES: &[&str] = &[
    "kernel/src/ring.rs",
    "kernel/src/completion.rs",
    "kernel/src/time.rs",
    "kernel/src/mem/address_space.rs",
    "kernel/src/proc",
    "kernel/src/cap",
];

/// Allocations whose size a caller can choose.
const SIZED: &[&str] = &[
    ".to_vec()",
    "Vec::with_capacity(",
    ".resize(",
    ".extend_from_slice(",
    "vec![",
    "String::from_utf8(",
];

/// Lines above a match searched for the marker.
const WINDOW: usize = 4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tools/ has a parent").to_path_buf()
}

fn sources() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in FILES {
        let p = root().join(f);
        if p.is_dir() {
            for e in fs::read_dir(&p).expect("kernel source dir reads") {
                let e = e.expect("dir entry");
                if e.path().extension().is_some_and(|x| x == "rs") {
                    out.push(e.path());
                }
            }
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `(line number, line)` of every unmarked sized allocation in `text`.
fn unmarked(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut bad = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if !SIZED.iter().any(|p| code.contains(p)) {
            continue;
        }
        let from = i.saturating_sub(WINDOW);
        let marked =
            lines[from..=i].iter().any(|l| l.contains("try_reserve") || l.contains("// alloc:"));
        if !marked {
            bad.push((i + 1, line.trim().to_string()));
        }
    }
    bad
}

#[test]
fn sized_allocations_on_syscall_paths_are_fallible_or_bounded() {
    let mut report = String::new();
    for path in sources() {
        let text = fs::read_to_string(&path).expect("kernel source reads");
        for (n, line) in unmarked(&text) {
            report.push_str(&format!(
                "{}:{n}: {line}\n",
                path.strip_prefix(root()).unwrap().display()
            ));
        }
    }
    assert!(
        report.is_empty(),
        "sized allocations without try_reserve or an `// alloc:` bound:\n{report}"
    );
}

#[test]
fn the_check_sees_an_unmarked_copy_and_accepts_marked_ones() {
    let text = "fn f(p: &[u8]) {\n    let v = p.to_vec();\n}\n";
    assert_eq!(unmarked(text), vec![(2, "let v = p.to_vec();".to_string())]);
    let marked = "fn f(p: &[u8]) {\n    // alloc: at most 16 bytes\n    let v = p.to_vec();\n}\n";
    assert!(unmarked(marked).is_empty());
    let fallible =
        "let mut v = Vec::new();\nif v.try_reserve(n).is_err() { return; }\nv.resize(n, 0);\n";
    assert!(unmarked(fallible).is_empty());
    assert!(unmarked("// v.to_vec() in a comment\n").is_empty());
}
