//! `ovmf/pins.toml`: what the firmware recipe is pinned to, checked on load.

use super::*;

/// `ovmf/pins.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OvmfPins {
    pub source: SourcePin,
    pub patches: PatchesPin,
    pub build: BuildPin,
    pub firmware: Vec<FirmwarePin>,
}

/// The Debian source package and its tarballs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcePin {
    pub package: String,
    pub version: String,
    /// Suite whose deb-src index lists the version.
    pub suite: String,
    /// Top folder of the orig tarball (the edk2 WORKSPACE).
    pub dir: String,
    pub tarball: Vec<TarballPin>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TarballPin {
    pub name: String,
    pub sha256: String,
}

/// Debian's quilt series.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchesPin {
    /// Path of the series file inside the WORKSPACE; the patches sit beside it.
    pub series: String,
    /// How many patches the series lists (a check that the series was read as intended).
    pub count: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildPin {
    /// Fixed absolute folder the source is unpacked and built in.
    pub dir: String,
    pub arch: String,
    pub toolchain: String,
    pub target: String,
    /// `build -n`: AutoGen workers and parallel module builds (1 for a fixed order).
    pub threads: u32,
    /// Files created empty in the WORKSPACE before building.
    pub empty_files: Vec<String>,
    /// Build tools, each also pinned as an `[[apt.package]]` in `pins.toml` at this version.
    pub tools: Vec<ToolPin>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPin {
    pub name: String,
    pub version: String,
}

/// One firmware flavour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwarePin {
    /// `amdsev` or `generic`.
    pub name: String,
    /// Platform description, relative to the WORKSPACE.
    pub dsc: String,
    /// The flash image the build writes, relative to the WORKSPACE.
    pub output: String,
    /// `-D` defines passed to `build` (`NAME=VALUE` or `NAME`).
    pub defines: Vec<String>,
    /// Expected sha256 of the output.
    pub sha256: String,
}

/// Which way a source tarball is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TarballKind {
    /// `*.orig.tar.*`: unpacked in the build folder; holds the WORKSPACE folder.
    Orig,
    /// `*.debian.tar.*`: unpacked inside the WORKSPACE (it holds `debian/`).
    Debian,
}

impl TarballPin {
    pub(super) fn kind(&self) -> Option<TarballKind> {
        if self.name.contains(".orig.tar.") {
            Some(TarballKind::Orig)
        } else if self.name.contains(".debian.tar.") {
            Some(TarballKind::Debian)
        } else {
            None
        }
    }
}

impl OvmfPins {
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(PIN_FILE);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let pins: Self = toml::from_str(text).context("parsing the OVMF pin file")?;
        pins.validate()?;
        Ok(pins)
    }

    pub(super) fn validate(&self) -> Result<()> {
        for t in &self.source.tarball {
            check_sha256(&t.sha256, &t.name)?;
            if t.name.contains('/') || t.name.starts_with('.') {
                bail!("tarball name {:?} must be a plain file name", t.name);
            }
        }
        for kind in [TarballKind::Orig, TarballKind::Debian] {
            let n = self
                .source
                .tarball
                .iter()
                .filter(|t| t.kind() == Some(kind))
                .count();
            if n != 1 {
                bail!(
                    "[[source.tarball]] needs exactly one {kind:?} tarball (*.{}.tar.*), found {n}",
                    if kind == TarballKind::Orig {
                        "orig"
                    } else {
                        "debian"
                    }
                );
            }
        }
        if let Some(t) = self.source.tarball.iter().find(|t| t.kind().is_none()) {
            bail!(
                "tarball {} is neither *.orig.tar.* nor *.debian.tar.*",
                t.name
            );
        }
        if self.source.dir.is_empty() || self.source.dir.contains('/') {
            bail!("source.dir {:?} must be one folder name", self.source.dir);
        }
        let dir = Path::new(&self.build.dir);
        if !dir.is_absolute() || dir.parent().is_none() {
            bail!(
                "build.dir {:?} must be a fixed absolute path (the firmware bytes depend on it)",
                self.build.dir
            );
        }
        if self.build.threads == 0 {
            bail!("build.threads must be at least 1 (0 would mean one per CPU, a varying order)");
        }
        for name in ["amdsev", "generic"] {
            let n = self.firmware.iter().filter(|f| f.name == name).count();
            if n != 1 {
                bail!("[[firmware]] needs exactly one entry named {name:?}, found {n}");
            }
        }
        if let Some(f) = self
            .firmware
            .iter()
            .find(|f| f.name != "amdsev" && f.name != "generic")
        {
            bail!(
                "unknown [[firmware]] {:?} (expected amdsev or generic)",
                f.name
            );
        }
        for f in &self.firmware {
            check_sha256(&f.sha256, &f.name)?;
        }
        Ok(())
    }

    pub(super) fn firmware(&self, name: &str) -> &FirmwarePin {
        self.firmware
            .iter()
            .find(|f| f.name == name)
            .expect("validated: both firmwares are pinned")
    }

    pub(super) fn tarball(&self, kind: TarballKind) -> &TarballPin {
        self.source
            .tarball
            .iter()
            .find(|t| t.kind() == Some(kind))
            .expect("validated: one tarball of each kind")
    }

    /// The WORKSPACE: the fixed build folder's unpacked source tree.
    pub(super) fn workspace(&self) -> PathBuf {
        Path::new(&self.build.dir).join(&self.source.dir)
    }
}

pub(super) fn check_sha256(value: &str, what: &str) -> Result<()> {
    if value.len() != 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        bail!("the sha256 of {what} must be 64 lowercase hex digits, not {value:?}");
    }
    Ok(())
}

/// Each build tool must be pinned in `pins.toml` at the version the firmware hashes hold for.
pub(super) fn check_tools(pins: &OvmfPins, main_pins: &Pins) -> Result<()> {
    for tool in &pins.build.tools {
        let package = main_pins
            .apt_package(&tool.name)
            .with_context(|| format!("{PIN_FILE} needs the build tool {}", tool.name))?;
        if package.version != tool.version {
            bail!(
                "{PIN_FILE} builds with {} {}, but pins.toml pins {}; keep the two in step \
                 (and re-check the firmware hashes)",
                tool.name,
                tool.version,
                package.version
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ovmf::test_util::*;

    #[test]
    fn the_pin_file_parses() {
        let pins = OvmfPins::parse(PINS).unwrap();
        assert_eq!(pins.source.package, "edk2");
        assert_eq!(
            pins.tarball(TarballKind::Orig).name,
            "edk2_2025.02.orig.tar.xz"
        );
        assert!(
            pins.tarball(TarballKind::Debian)
                .name
                .ends_with(".debian.tar.xz")
        );
        assert_eq!(pins.firmware("amdsev").dsc, "OvmfPkg/AmdSev/AmdSevX64.dsc");
        assert_eq!(pins.firmware("generic").dsc, "OvmfPkg/OvmfPkgX64.dsc");
        assert!(Path::new(&pins.build.dir).is_absolute());
        assert!(
            pins.build
                .empty_files
                .contains(&"OvmfPkg/AmdSev/Grub/grub.efi".to_owned())
        );
        let args = build_args(&pins, pins.firmware("amdsev"));
        assert_eq!(
            args[..8],
            ["-n", "1", "-a", "X64", "-t", "GCC5", "-b", "RELEASE"].map(String::from)
        );
        let generic = build_args(&pins, pins.firmware("generic"));
        assert!(generic.ends_with(&["-D".to_owned(), "NETWORK_ISCSI_ENABLE=FALSE".to_owned()]));
    }

    #[test]
    fn the_tools_agree_with_the_main_pins() {
        let pins = OvmfPins::parse(PINS).unwrap();
        let main: Pins = toml::from_str(include_str!("../../../pins.toml")).unwrap();
        check_tools(&pins, &main).unwrap();

        let mut drifted = main.clone();
        let nasm = drifted
            .apt
            .package
            .iter_mut()
            .find(|p| p.name == "nasm")
            .unwrap();
        nasm.version = "9.9".into();
        let err = check_tools(&pins, &drifted).unwrap_err().to_string();
        assert!(err.contains("nasm") && err.contains("9.9"), "{err}");
    }

    #[test]
    fn bad_pins_are_refused() {
        let bad_sha = PINS.replacen(
            "b63b6053d6d89c74d9291f9e96fde1584be99e6fb9c169ba9511505129d6b049",
            "B63B",
            1,
        );
        assert!(OvmfPins::parse(&bad_sha).is_err());
        let relative = PINS.replace("dir = \"/var/tmp/pp-ovmf-build\"", "dir = \"build\"");
        let err = OvmfPins::parse(&relative).unwrap_err();
        assert!(format!("{err:#}").contains("absolute"), "{err:#}");
        let no_generic = PINS.replace("name = \"generic\"", "name = \"other\"");
        assert!(OvmfPins::parse(&no_generic).is_err());
        let unknown_key = PINS.replace("[patches]", "[patches]\nfuzz = 2");
        assert!(OvmfPins::parse(&unknown_key).is_err());
    }

    #[test]
    fn showsrc_checksums_of_the_pinned_version() {
        let text = "Package: edk2\nVersion: 2025.02-8\nChecksums-Sha256:\n aa 1 old.tar.xz\n\n\
                    Package: edk2\nBinary: ovmf\nVersion: 2025.02-8+deb13u1\nFiles:\n 00 2 x.dsc\n\
                    Checksums-Sha256:\n 11 2656 edk2_2025.02-8+deb13u1.dsc\n 22 29646336 \
                    edk2_2025.02.orig.tar.xz\n 33 53652 edk2_2025.02-8+deb13u1.debian.tar.xz\n\
                    Homepage: http://example\n";
        let sums = listed_checksums(text, "edk2", "2025.02-8+deb13u1").unwrap();
        assert_eq!(
            sums,
            [
                ("edk2_2025.02-8+deb13u1.dsc", "11"),
                ("edk2_2025.02.orig.tar.xz", "22"),
                ("edk2_2025.02-8+deb13u1.debian.tar.xz", "33")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert!(listed_checksums(text, "edk2", "2024.11-1").is_none());
        assert!(listed_checksums(text, "other", "2025.02-8").is_none());
    }
}
