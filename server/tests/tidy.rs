//! Tidy: the pure state machines stay pure. `proto`, the data tree (`server/src/tree`), ZAB
//! (`server/src/zab`) and the replica (`server/src/replica`) must not use tokio, files, sockets, threads, the clock or a global
//! RNG: time and randomness are inputs, so the same code runs under the deterministic
//! simulator and under tokio. Test-only code (files named `*tests.rs`, `sim.rs`, and what
//! follows a `#[cfg(test)]` line) is exempt.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

const FORBIDDEN: [&str; 12] = [
    "tokio",
    "std::fs",
    "std::net",
    "std::thread",
    "Instant::now",
    // `Instant::elapsed` reads the clock too.
    ".elapsed()",
    "SystemTime",
    "rand::",
    "thread_rng",
    "getrandom",
    "std::process",
    "std::env",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The non-test lines of `text` that name something forbidden: (line number, line).
fn violations(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        if FORBIDDEN.iter().any(|word| code.contains(word)) {
            found.push((number + 1, line.trim().to_owned()));
        }
    }
    found
}

#[test]
fn pure_modules_do_no_io() {
    let server = Path::new(env!("CARGO_MANIFEST_DIR"));
    let roots = [
        server.join("../proto/src"),
        server.join("src/tree"),
        server.join("src/zab"),
        server.join("src/replica"),
    ];
    let mut files = Vec::new();
    for root in &roots {
        rust_files(root, &mut files);
    }
    assert!(files.len() >= 35, "found only {} files: wrong roots?", files.len());
    let mut report = String::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("tests.rs") || name == "sim.rs" {
            continue;
        }
        for (line, text) in violations(&std::fs::read_to_string(&file).unwrap()) {
            report.push_str(&format!("{}:{line}: {text}\n", file.display()));
        }
    }
    assert!(report.is_empty(), "I/O, clock or global RNG in a pure module:\n{report}");
}

#[test]
fn the_check_sees_what_it_forbids() {
    assert_eq!(violations("use tokio::sync::mpsc;\nfn f() {}\n").len(), 1);
    assert_eq!(violations("let t = std::time::Instant::now();").len(), 1);
    assert_eq!(violations("let d = started.elapsed();").len(), 1);
    assert!(violations("// tokio in a comment\nfn f() {}\n").is_empty());
    assert!(violations("fn f() {}\n#[cfg(test)]\nmod tests { use std::fs; }\n").is_empty());
}
