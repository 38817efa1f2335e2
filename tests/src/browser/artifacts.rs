//! Where the browser tests leave files for review: `<target>/screenshots/`.

use std::path::{Path, PathBuf};

/// `<target>/screenshots/`, created when missing.
pub fn screenshots_dir() -> PathBuf {
    let dir = target_dir().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Cargo's target folder of this build.
///
/// An absolute `CARGO_TARGET_DIR` wins. Otherwise the folder holding this test binary
/// (`<target>/<profile>/deps/`, or `<target>/<triple>/<profile>/deps/`) is searched upwards for
/// the `CACHEDIR.TAG` cargo writes at a target folder's root: a relative `CARGO_TARGET_DIR` was
/// relative to where cargo ran, which the test (run in its package's folder) does not know.
/// Last, the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        if dir.is_absolute() {
            return dir;
        }
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe
            .ancestors()
            .skip(1)
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        {
            return dir.to_owned();
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the workspace")
        .join("target")
}

/// `name` as a file stem, refused unless it is one plain path segment: it is joined to a
/// folder, so a `/` or `..` would write elsewhere.
pub fn checked_name(name: &str) -> &str {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    assert!(
        plain,
        "artifact name {name:?}: use letters, digits, '-', '_' and '.' (not first)"
    );
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_the_folder() {
        assert_eq!(
            checked_name("console-sign-in.mobile"),
            "console-sign-in.mobile"
        );
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b", "é"] {
            assert!(
                std::panic::catch_unwind(|| checked_name(bad)).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn the_target_folder_holds_this_binary() {
        let exe = std::env::current_exe().unwrap();
        assert!(exe.starts_with(target_dir()), "{}", target_dir().display());
    }
}
