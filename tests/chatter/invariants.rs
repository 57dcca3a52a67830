//! The absences ARCHITECTURE.md promises, checked over the source text.

use std::path::{Path, PathBuf};

fn sources_under(relative: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let paths: Vec<PathBuf> = if root.is_dir() {
        std::fs::read_dir(&root)
            .expect("read source directory")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
            .collect()
    } else {
        vec![root]
    };
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read source file");
            (path, text)
        })
        .collect()
}

/// The code of a file outside its `#[cfg(test)]` module (which sits at the end of each file
/// here), without comments; test-only files give nothing.
fn production_part(path: &Path, text: &str) -> String {
    if path.ends_with("tests.rs") {
        return String::new();
    }
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

#[test]
fn relay_code_never_calls_openmls() {
    for (path, text) in sources_under("src/relay") {
        let code = production_part(&path, &text);
        for forbidden in ["openmls", "crate::mls::", "crate::admission"] {
            assert!(!code.contains(forbidden), "{} mentions {forbidden}", path.display());
        }
    }
}

#[test]
fn the_relay_opens_no_file_but_the_report() {
    for (path, text) in sources_under("src/relay") {
        if path.ends_with("report.rs") {
            continue;
        }
        for forbidden in ["File::", "OpenOptions", "fs::write", "fs::rename", "create_dir"] {
            assert!(
                !production_part(&path, &text).contains(forbidden),
                "{} uses {forbidden}",
                path.display()
            );
        }
    }
}

#[test]
fn the_sans_io_core_performs_no_io_and_prints_nothing() {
    let mut files = sources_under("src/mls");
    for file in [
        "src/admission.rs",
        "src/pake.rs",
        "src/proto.rs",
        "src/mls_header.rs",
        "src/client/room.rs",
    ] {
        files.extend(sources_under(file));
    }
    for (path, text) in files {
        let code = production_part(&path, &text);
        for forbidden in [
            "tokio::",
            "std::net",
            "std::fs",
            "println!",
            "eprintln!",
            "Instant::now",
            "SystemTime::now",
        ] {
            assert!(!code.contains(forbidden), "{} uses {forbidden}", path.display());
        }
    }
}

#[test]
fn only_proto_defines_wire_types() {
    let mut files = sources_under("src/relay");
    files.extend(sources_under("src/client"));
    files.extend(sources_under("src/mls"));
    for file in ["src/transport.rs", "src/admission.rs", "src/pake.rs"] {
        files.extend(sources_under(file));
    }
    for (path, text) in files {
        let code = production_part(&path, &text);
        let derives_serde = code
            .split("#[derive(")
            .skip(1)
            .any(|derive| derive.split(')').next().is_some_and(|list| list.contains("Serialize")));
        assert!(!derives_serde, "{} derives wire types", path.display());
    }
}
