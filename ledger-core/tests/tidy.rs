//! Tidy: conventions of the whole workspace, enforced inside `cargo test`
//! (in the manner of rust-analyzer's tidy test).
//! - every `.rs` file opens with a `//!` line saying what it owns;
//! - `ledger-core` stays pure: no I/O or async crates among its normal
//!   dependencies, no clock, no floats, no `unsafe`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | ".git" | "node_modules")
                && !name.starts_with('.')
            {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&workspace_root(), &mut files);
    assert!(files.len() > 10, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            !text.trim_start().starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!` doc: {missing:?}"
    );
}

#[test]
fn ledger_core_has_no_io_async_or_json_dependencies() {
    let manifest =
        std::fs::read_to_string(workspace_root().join("ledger-core/Cargo.toml")).unwrap();
    let mut in_dependencies = false;
    let mut dependencies = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once('=') {
            dependencies.push(name.trim().to_string());
        }
    }
    assert!(!dependencies.is_empty());
    for forbidden in [
        "tokio",
        "sqlx",
        "reqwest",
        "serde_json",
        "async-std",
        "futures",
        "hyper",
        "chrono",
        "rand",
    ] {
        assert!(
            !dependencies.iter().any(|d| d == forbidden),
            "ledger-core must not depend on {forbidden}"
        );
    }
}

#[test]
fn ledger_core_reads_no_clock_and_uses_no_floats() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("ledger-core/src"), &mut files);
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for forbidden in ["SystemTime", "Instant::", "f32", "f64", "unsafe "] {
                assert!(
                    !code.contains(forbidden),
                    "{}:{}: `{forbidden}` has no place in ledger-core",
                    path.display(),
                    number + 1
                );
            }
        }
    }
}
