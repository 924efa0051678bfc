//! The pinned edk2 source: fetched with apt, checked by hash, unpacked, Debian's patches applied.

use super::*;

/// The pinned source tarballs in `dir`, fetched with `apt-get source` when missing, each
/// checked against its pinned sha256. Returns them in pin order.
pub(super) fn fetch_sources(dir: &Path, pins: &OvmfPins) -> Result<Vec<(TarballPin, PathBuf)>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut missing = false;
    for t in &pins.source.tarball {
        let path = dir.join(&t.name);
        if path.is_file() {
            if sha256_file(&path)? == t.sha256 {
                continue;
            }
            fs::remove_file(&path)?;
        }
        missing = true;
    }
    if missing {
        let spec = format!("{}={}", pins.source.package, pins.source.version);
        eprintln!("ovmf: fetching the {spec} source package with apt-get source");
        setup::ensure_source_suite(&pins.source.suite)?;
        check_archive_lists_source(pins)?;
        // Only the tarballs matter: the archive's .dsc for this version may be missing (404), so
        // apt-get's exit status is not the verdict; the pinned hashes below are.
        let out = Command::new("apt-get")
            .args(["source", "--download-only", "--only-source", "-q", &spec])
            .current_dir(dir)
            .output()
            .context("running apt-get source")?;
        for t in &pins.source.tarball {
            if !dir.join(&t.name).is_file() {
                bail!(
                    "`apt-get source --download-only --only-source {spec}` did not fetch {} \
                     (is the Debian archive reachable?):\n{}",
                    t.name,
                    tail(&String::from_utf8_lossy(&out.stderr), 15)
                );
            }
        }
    }
    let mut found = Vec::new();
    for t in &pins.source.tarball {
        let path = dir.join(&t.name);
        let got = sha256_file(&path)?;
        if got != t.sha256 {
            fs::remove_file(&path)?;
            bail!(
                "{} has sha256 {got}, but {PIN_FILE} expects {}; refusing it",
                t.name,
                t.sha256
            );
        }
        found.push((t.clone(), path));
    }
    Ok(found)
}

/// The archive's Sources index must list the pinned version with the pinned tarball hashes.
pub(super) fn check_archive_lists_source(pins: &OvmfPins) -> Result<()> {
    let spec = format!("{}={}", pins.source.package, pins.source.version);
    let lookup = || -> Result<Option<Vec<(String, String)>>> {
        let text = stdout_of(Command::new("apt-cache").args(["showsrc", &pins.source.package]))
            .unwrap_or_default();
        Ok(listed_checksums(
            &text,
            &pins.source.package,
            &pins.source.version,
        ))
    };
    let listed = match lookup()? {
        Some(listed) => listed,
        None => {
            setup::refresh_indexes("refresh apt's source package indexes")?;
            lookup()?.with_context(|| {
                format!(
                    "the pinned source package {spec} is no longer listed by any deb-src index \
                     (expected in {}); update {PIN_FILE} deliberately",
                    pins.source.suite
                )
            })?
        }
    };
    for t in &pins.source.tarball {
        match listed.iter().find(|(name, _)| *name == t.name) {
            Some((_, sha)) if *sha == t.sha256 => {}
            Some((_, sha)) => bail!(
                "the archive lists {} of {spec} with sha256 {sha}, but {PIN_FILE} expects {}",
                t.name,
                t.sha256
            ),
            None => bail!(
                "the archive's {spec} has no file {} (it lists {:?})",
                t.name,
                listed.iter().map(|(n, _)| n).collect::<Vec<_>>()
            ),
        }
    }
    Ok(())
}

/// From `apt-cache showsrc` output: the (file name, sha256) pairs of the record of `package` at
/// `version`, or None when no record has that version.
pub(super) fn listed_checksums(
    text: &str,
    package: &str,
    version: &str,
) -> Option<Vec<(String, String)>> {
    for record in text.split("\n\n") {
        let field = |key: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(key).map(str::trim))
        };
        if field("Package:") != Some(package) || field("Version:") != Some(version) {
            continue;
        }
        let mut sums = Vec::new();
        let mut inside = false;
        for line in record.lines() {
            if line.starts_with("Checksums-Sha256:") {
                inside = true;
            } else if inside && line.starts_with(' ') {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let [sha, _size, name] = words[..] {
                    sums.push((name.to_owned(), sha.to_owned()));
                }
            } else {
                inside = false;
            }
        }
        return Some(sums);
    }
    None
}

/// One entry of a quilt series file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeriesPatch {
    name: String,
    /// Leading path components to strip (`patch -pN`); 1 unless the line says otherwise.
    strip: u32,
}

/// Parse a quilt `series` file: one patch per line, optionally followed by `-pN`; `#` starts a
/// comment; blank lines are skipped. Any other option is an error (it would change the result).
pub(super) fn parse_series(text: &str) -> Result<Vec<SeriesPatch>> {
    let mut patches = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let name = words.next().expect("non-empty line").to_owned();
        if name.contains("..") || name.starts_with('/') {
            bail!(
                "series line {}: patch path {name:?} leaves the patch folder",
                number + 1
            );
        }
        let mut strip = 1;
        for option in words {
            match option.strip_prefix("-p").map(str::parse::<u32>) {
                Some(Ok(n)) => strip = n,
                _ => bail!(
                    "series line {}: unsupported option {option:?} for {name}",
                    number + 1
                ),
            }
        }
        patches.push(SeriesPatch { name, strip });
    }
    Ok(patches)
}

/// A fresh WORKSPACE: both tarballs unpacked, the patch series applied, the empty files created.
pub(super) fn prepare_workspace(
    pins: &OvmfPins,
    tarballs: &[(TarballPin, PathBuf)],
    ws: &Path,
) -> Result<()> {
    if ws.exists() {
        fs::remove_dir_all(ws).with_context(|| format!("removing the old {}", ws.display()))?;
    }
    let build_dir = ws
        .parent()
        .expect("the workspace is inside the build folder");
    let path_of = |kind: TarballKind| {
        let name = &pins.tarball(kind).name;
        tarballs
            .iter()
            .find(|(t, _)| t.name == *name)
            .map(|(_, p)| p.clone())
            .expect("every pinned tarball was fetched")
    };
    eprintln!("ovmf: unpacking the source into {}", ws.display());
    run(Command::new("tar")
        .arg("-xJf")
        .arg(path_of(TarballKind::Orig))
        .arg("--no-same-owner")
        .arg("-C")
        .arg(build_dir))?;
    if !ws.is_dir() {
        bail!(
            "the orig tarball did not unpack into {} (source.dir in {PIN_FILE})",
            ws.display()
        );
    }
    run(Command::new("tar")
        .arg("-xJf")
        .arg(path_of(TarballKind::Debian))
        .arg("--no-same-owner")
        .arg("-C")
        .arg(ws))?;

    let series_path = ws.join(&pins.patches.series);
    let series = fs::read_to_string(&series_path)
        .with_context(|| format!("reading {}", series_path.display()))?;
    let patches = parse_series(&series)?;
    if patches.len() != pins.patches.count {
        bail!(
            "{} lists {} patches, {PIN_FILE} expects {}",
            pins.patches.series,
            patches.len(),
            pins.patches.count
        );
    }
    let patch_dir = series_path
        .parent()
        .expect("the series file is in a folder");
    eprintln!("ovmf: applying {} Debian patches", patches.len());
    for (i, p) in patches.iter().enumerate() {
        let mut cmd = Command::new("patch");
        cmd.arg(format!("-p{}", p.strip))
            .args([
                "--forward",
                "--batch",
                "--fuzz=0",
                "--no-backup-if-mismatch",
                "--reject-file=-",
                "--quiet",
                "-d",
            ])
            .arg(ws)
            .arg("-i")
            .arg(patch_dir.join(&p.name));
        run(&mut cmd).with_context(|| {
            format!(
                "Debian patch {} ({} of {}) does not apply cleanly",
                p.name,
                i + 1,
                patches.len()
            )
        })?;
    }

    for file in &pins.build.empty_files {
        let path = ws.join(file);
        fs::write(&path, b"").with_context(|| format!("creating the empty {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_comments_blank_lines_and_strip_options() {
        let text = "# Debian patches\n\nfirst.diff\n  second.patch   -p0 \nthird.patch # why\n\
                    #disabled.patch\nsub/fourth.patch -p2\n";
        let patches = parse_series(text).unwrap();
        let got: Vec<(&str, u32)> = patches.iter().map(|p| (p.name.as_str(), p.strip)).collect();
        assert_eq!(
            got,
            [
                ("first.diff", 1),
                ("second.patch", 0),
                ("third.patch", 1),
                ("sub/fourth.patch", 2)
            ]
        );
        assert!(parse_series("a.patch -R\n").is_err());
        assert!(parse_series("a.patch -px\n").is_err());
        assert!(parse_series("../escape.patch\n").is_err());
        assert!(parse_series("\n# nothing\n").unwrap().is_empty());
    }
}
