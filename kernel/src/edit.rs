//! Build-time source edits: exact-text replacements applied to a copy of a checksum-pinned crate.
//!
//! Each edit names the file, the text it expects, what replaces it, how often the text must occur,
//! and why. An edit whose text is not found the expected number of times is an error: the pinned
//! source changed, and the edit must be revisited rather than silently skipped.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Which files an edit touches.
#[derive(Debug, Clone, Copy)]
pub enum Files {
    /// One file, relative to the crate root.
    One(&'static str),
    /// Every `.rs` file below a folder, relative to the crate root.
    RustBelow(&'static str),
}

/// One exact-text replacement.
#[derive(Debug, Clone, Copy)]
pub struct SourceEdit {
    pub files: Files,
    pub find: &'static str,
    pub replace: &'static str,
    /// Total occurrences expected across `files`.
    pub count: usize,
    /// Why the pinned source needs this change.
    pub reason: &'static str,
}

/// Apply every edit to the crate source at `root`, checking each occurrence count.
pub fn apply_all(root: &Path, edits: &[SourceEdit]) -> Result<()> {
    for edit in edits {
        apply(root, edit).with_context(|| format!("source edit ({})", edit.reason))?;
    }
    Ok(())
}

fn apply(root: &Path, edit: &SourceEdit) -> Result<()> {
    let files = match edit.files {
        Files::One(rel) => vec![root.join(rel)],
        Files::RustBelow(rel) => {
            let mut out = Vec::new();
            rust_files(&root.join(rel), &mut out)?;
            out.sort();
            out
        }
    };
    let mut seen = 0;
    let mut changed = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let n = text.matches(edit.find).count();
        if n > 0 {
            seen += n;
            changed.push((file, text.replace(edit.find, edit.replace)));
        }
    }
    if seen != edit.count {
        bail!(
            "expected {} occurrence(s) of {:?}, found {seen}: the pinned source is not what this edit was written for",
            edit.count,
            edit.find
        );
    }
    for (file, text) in changed {
        fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// A stable fingerprint of an edit list, so a prepared source copy is redone when edits change.
pub fn fingerprint(edits: &[SourceEdit]) -> String {
    let mut s = String::new();
    for e in edits {
        s.push_str(&format!(
            "{:?}\u{1f}{}\u{1f}{}\u{1f}{}\u{1e}",
            e.files, e.find, e.replace, e.count
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pp-edit-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("src/a")).unwrap();
        dir
    }

    #[test]
    fn applies_across_files_and_checks_count() {
        let dir = tmp("count");
        fs::write(dir.join("src/x.rs"), "#[naked]\nfn a(){}\n").unwrap();
        fs::write(dir.join("src/a/y.rs"), "#[naked]\n#[naked]\n").unwrap();
        let edit = SourceEdit {
            files: Files::RustBelow("src"),
            find: "#[naked]",
            replace: "#[unsafe(naked)]",
            count: 3,
            reason: "test",
        };
        apply_all(&dir, &[edit]).unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("src/a/y.rs")).unwrap(),
            "#[unsafe(naked)]\n#[unsafe(naked)]\n"
        );
        // Applying again finds nothing to replace: the count check refuses it.
        assert!(apply_all(&dir, &[edit]).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn wrong_count_changes_nothing() {
        let dir = tmp("nochange");
        fs::write(dir.join("src/x.rs"), "foo foo").unwrap();
        let edit = SourceEdit {
            files: Files::One("src/x.rs"),
            find: "foo",
            replace: "bar",
            count: 1,
            reason: "test",
        };
        assert!(apply_all(&dir, &[edit]).is_err());
        assert_eq!(fs::read_to_string(dir.join("src/x.rs")).unwrap(), "foo foo");
        fs::remove_dir_all(dir).unwrap();
    }
}
