//! The kernel's modules form layers that never import upward (see
//! `docs/src/kernel.md`). Every `kernel/src` file is mapped to its layer
//! ([`LAYERS`], by module path), every `crate::…` and `super::…` path in it
//! (in `use` lines, `use crate::{a, b::{c, d}}` groups and inline paths) is
//! resolved to the module it names, and a path into a higher layer fails
//! the test, listed as `file:line`. Modules of one layer may use each other.
//! [`ALLOWED`] lists the upward imports still to remove, each with a reason.

use std::fs;
use std::path::{Path, PathBuf};

/// Module path prefix (from the crate root) and its layer, lowest first.
/// The longest matching prefix decides; a crate-root name not listed (an
/// item of `main.rs`) is in the top layer.
const LAYERS: &[(&str, u8)] = &[
    // 1: primitives.
    ("sync", 1),
    ("mem", 1),
    ("arch", 1),
    ("boot", 1),
    ("dev", 1),
    ("log", 1),
    ("panic", 1),
    ("qemu", 1),
    ("hooks", 1),
    // Call frames: per-CPU scratch memory a call is served in.
    ("frame", 1),
    // The log macros are exported at the crate root from `log`.
    ("kerror", 1),
    ("kwarn", 1),
    ("kinfo", 1),
    ("kdebug", 1),
    ("console", 1),
    // 2: threads and run queues.
    ("sched", 2),
    // 3: timer wake-ups.
    ("time", 3),
    // 4: processes, and the deferred completions: a pending call names its
    // caller's process and thread (its results go into that memory, its
    // CQE to that thread's ring), and a process holds the pending calls of
    // its waiters, so the two are one layer.
    ("proc", 4),
    ("completion", 4),
    // 4 too: the cap table and the `CapObject` trait (`cap/mod.rs`): a
    // process holds its cap table and a call's context names the calling
    // process, so the two use each other. Endpoints and revocable wrappers
    // belong with them: `CapObject` methods (`endpoint`, `minted`,
    // `as_revocable`) return them, so the ring and cap transfer can find
    // the object behind a cap.
    ("cap", 4),
    ("cap::endpoint", 4),
    ("cap::revocable", 4),
    // 5: capability objects (every module under `cap`).
    ("cap::*", 5),
    // 6: SQ intake and dispatch.
    ("ring", 6),
    // 7: system-call entry, boot manifest, `main`.
    ("syscall", 7),
    ("manifest", 7),
];

/// The layer of crate-root items not in [`LAYERS`] (`main.rs`).
const TOP: u8 = 7;

/// Upward imports still to remove: (file under kernel/src, module path
/// prefix it may reach, why).
const ALLOWED: &[(&str, &str, &str)] = &[];

/// The layer of a module path (segments from the crate root). A `*`
/// segment in [`LAYERS`] stands for any child module of the kernel (one in
/// `modules`), never for an item of the parent.
fn layer_of(path: &[String], modules: &[Vec<String>]) -> u8 {
    let mut best: Option<(usize, u8)> = None;
    for (prefix, layer) in LAYERS {
        let segs: Vec<&str> = prefix.split("::").collect();
        let matches = segs.len() <= path.len()
            && segs.iter().zip(path).all(|(a, b)| *a == b.as_str() || *a == "*")
            && (!prefix.ends_with('*') || modules.iter().any(|m| m[..] == path[..segs.len()]));
        if matches && best.is_none_or(|(n, _)| segs.len() > n) {
            best = Some((segs.len(), *layer));
        }
    }
    best.map_or(TOP, |(_, l)| l)
}

/// The child modules `text` declares (`mod x;`, `pub mod x;`).
fn children(text: &str) -> Vec<String> {
    let s = strip(text);
    let mut out = Vec::new();
    for line in s.lines() {
        let l = line.trim_start();
        let l = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
        if let Some(rest) = l.strip_prefix("mod ") {
            if let Some(name) = rest.trim().strip_suffix(';') {
                out.push(name.trim().to_string());
            }
        }
    }
    out
}

/// The module path of a source file relative to `kernel/src`.
fn module_of(rel: &str) -> Vec<String> {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut segs: Vec<String> = rel.split('/').map(String::from).collect();
    if segs.last().is_some_and(|s| s == "mod" || s == "main") {
        segs.pop();
    }
    segs
}

/// `text` with comments and string/char literals blanked (newlines kept,
/// so line numbers stay).
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for ch in &b[i..j.min(b.len())] {
                out.push(blank(*ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime.
            let end = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for _ in i..=e {
                        out.push(' ');
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parses a path tail at `b[*i..]` (after `prefix::`): segments, `{…}`
/// groups (recursively), `*`, `self`, `x as y`. Pushes every full path.
fn parse_tail(b: &[char], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    loop {
        skip_ws(b, i);
        if b.get(*i) == Some(&'{') {
            *i += 1;
            loop {
                skip_ws(b, i);
                match b.get(*i) {
                    None => return,
                    Some('}') => {
                        *i += 1;
                        return;
                    }
                    Some(',') => *i += 1,
                    _ => {
                        let before = *i;
                        parse_tail(b, i, &path, out);
                        if *i == before {
                            *i += 1;
                        }
                    }
                }
            }
        }
        let start = *i;
        while *i < b.len() && is_ident(b[*i]) {
            *i += 1;
        }
        if *i == start {
            // `*` or nothing more: the path so far.
            if b.get(*i) == Some(&'*') {
                *i += 1;
            }
            out.push(path);
            return;
        }
        let seg: String = b[start..*i].iter().collect();
        if seg != "self" {
            path.push(seg);
        }
        let save = *i;
        skip_ws(b, i);
        if b.get(*i) == Some(&':') && b.get(*i + 1) == Some(&':') {
            *i += 2;
            continue;
        }
        *i = save;
        out.push(path);
        return;
    }
}

fn skip_ws(b: &[char], i: &mut usize) {
    while *i < b.len() && b[*i].is_whitespace() {
        *i += 1;
    }
}

/// Every `(line, full module path)` that `text`, the source of module
/// `module`, reaches with `crate::`, `super::` or (into a child module it
/// declares) `child::`.
fn imports(module: &[String], text: &str) -> Vec<(usize, Vec<String>)> {
    let kids = children(text);
    let s = strip(text);
    let b: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        if b[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if i > 0 && is_ident(b[i - 1]) || !is_ident(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let word: String = b[start..i].iter().collect();
        let child = kids.contains(&word) && !(start >= 2 && b[start - 2..start] == [':', ':']);
        if word != "crate" && word != "super" && !child {
            continue;
        }
        if !(b.get(i) == Some(&':') && b.get(i + 1) == Some(&':')) {
            continue;
        }
        let mut base: Vec<String> = if word == "crate" { Vec::new() } else { module.to_vec() };
        if word == "super" {
            base.pop();
        } else if child {
            base.push(word);
        }
        i += 2;
        // Further `super::` climb on.
        while b[i..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
            base.pop();
            i += 7;
        }
        let mut paths = Vec::new();
        parse_tail(&b, &mut i, &base, &mut paths);
        let first = line;
        line += b[start..i].iter().filter(|c| **c == '\n').count();
        for p in paths {
            out.push((first, p));
        }
    }
    out
}

/// Every upward import in `text` (module `module`) as `line: message`.
fn upward(rel: &str, text: &str, modules: &[Vec<String>]) -> Vec<(usize, String)> {
    let module = module_of(rel);
    let mine = layer_of(&module, modules);
    let mut bad = Vec::new();
    for (line, path) in imports(&module, text) {
        let theirs = layer_of(&path, modules);
        if theirs <= mine {
            continue;
        }
        let target = path.join("::");
        let allowed = ALLOWED.iter().any(|(f, prefix, _)| {
            *f == rel && (target == *prefix || target.starts_with(&format!("{prefix}::")))
        });
        if !allowed {
            bad.push((line, format!("layer {mine} uses crate::{target} (layer {theirs})")));
        }
    }
    bad
}

fn kernel_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tools/ has a parent").join("kernel/src")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("kernel source dir reads") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of every file in `files` (under `root`).
fn modules(root: &Path, files: &[PathBuf]) -> Vec<Vec<String>> {
    files
        .iter()
        .map(|p| module_of(&p.strip_prefix(root).expect("under kernel/src").to_string_lossy()))
        .collect()
}

#[test]
fn kernel_modules_never_import_a_higher_layer() {
    let root = kernel_src();
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    assert!(files.len() > 20, "kernel sources found under {}", root.display());
    let modules = modules(&root, &files);
    let mut report = String::new();
    for path in files {
        let rel = path.strip_prefix(&root).expect("under kernel/src").to_string_lossy();
        let rel = rel.replace('\\', "/");
        let text = fs::read_to_string(&path).expect("kernel source reads");
        for (line, msg) in upward(&rel, &text, &modules) {
            report.push_str(&format!("kernel/src/{rel}:{line}: {msg}\n"));
        }
    }
    assert!(report.is_empty(), "upward imports (see docs/src/kernel.md):\n{report}");
}

#[test]
fn every_allowed_exception_is_still_needed() {
    let root = kernel_src();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let modules = modules(&root, &files);
    for (file, prefix, _) in ALLOWED {
        let rel = *file;
        let text = fs::read_to_string(root.join(rel)).expect("allowed file exists");
        let module = module_of(rel);
        let mine = layer_of(&module, &modules);
        let used = imports(&module, &text).iter().any(|(_, p)| {
            let t = p.join("::");
            layer_of(p, &modules) > mine && (t == *prefix || t.starts_with(&format!("{prefix}::")))
        });
        assert!(used, "kernel/src/{rel} no longer uses crate::{prefix}: drop it from ALLOWED");
    }
}

#[test]
fn scanner_finds_upward_paths() {
    let src = r#"
//! Uses crate::ring in a comment only.
use crate::{sync::IrqLock, mem::{frames, paging}};
use crate::sched;
use super::super::proc::Process;
fn f() {
    let s = "crate::cap::x";
    let c = '"';
    crate::cap::timer::finish(c);
    crate::{
        time::now
    };
}
"#;
    let modules: Vec<Vec<String>> = ["sched", "sched::run", "cap", "cap::timer", "proc", "time"]
        .iter()
        .map(|m| m.split("::").map(String::from).collect())
        .collect();
    // As a file of layer 2 (sched).
    let bad = upward("sched/run.rs", src, &modules);
    let lines: Vec<usize> = bad.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![5, 9, 10], "{bad:?}");
    assert!(bad[0].1.contains("crate::proc::Process (layer 4)"), "{bad:?}");
    assert!(bad[1].1.contains("crate::cap::timer::finish (layer 5)"), "{bad:?}");
    assert!(bad[2].1.contains("crate::time::now (layer 3)"), "{bad:?}");
    // The same text in the top layer is fine.
    assert!(upward("syscall.rs", src, &modules).is_empty());
    // The cap table (`cap/mod.rs`) is below the cap objects, and a child
    // module named without a prefix is found.
    assert_eq!(layer_of(&["cap".into(), "CapEntry".into()], &modules), 4);
    assert_eq!(layer_of(&["cap".into(), "timer".into(), "f".into()], &modules), 5);
    let bad = upward("cap/mod.rs", "pub mod timer;\nfn g() { timer::finish(); }\n", &modules);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].1.contains("crate::cap::timer::finish (layer 5)"), "{bad:?}");
    // Groups expand to every member.
    let got = imports(&module_of("a/b.rs"), "use crate::{x, y::{z, self}};");
    let got: Vec<String> = got.iter().map(|(_, p)| p.join("::")).collect();
    assert_eq!(got, vec!["x", "y::z", "y"]);
    // `super::` from a mod.rs climbs out of its directory's module.
    let got = imports(&module_of("cap/mod.rs"), "use super::ring;");
    assert_eq!(got[0].1, vec!["ring".to_string()]);
    assert_eq!(layer_of(&got[0].1, &modules), 6);
}
