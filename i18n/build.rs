//! Embeds every `locales/<language>/<file>.ftl` in the crate, so a new file (or language
//! directory) is part of the catalog, and of its completeness test, without a code change.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("locales");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files: Vec<(String, String, String)> = Vec::new();
    for language in std::fs::read_dir(&root).expect("i18n/locales exists") {
        let language = language.expect("readable locales directory").path();
        if !language.is_dir() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", language.display());
        let code = language.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&language).expect("readable language directory") {
            let path = file.expect("readable language directory").path();
            if path.extension().is_some_and(|e| e == "ftl") {
                println!("cargo:rerun-if-changed={}", path.display());
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                files.push((code.clone(), name, path.display().to_string()));
            }
        }
    }
    files.sort();
    let mut out =
        String::from("/// (language, file name, Fluent source) of every embedded file.\n");
    out.push_str("pub(crate) const FILES: &[(&str, &str, &str)] = &[\n");
    for (code, name, path) in &files {
        writeln!(out, "    ({code:?}, {name:?}, include_str!({path:?})),").unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("files.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
