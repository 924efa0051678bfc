//! Post-processing of the kernel's static library, as the upstream kernel's own build tool does it
//! (re-done here in our code): keep only the system-call surface visible, rename everything else
//! under a prefix so the kernel's private copy of `core`/`alloc` cannot clash with the application's,
//! append the math builtins, and mark every ELF member as OS/ABI "standalone" (255).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Where the LLVM tools live (Debian's `llvm-22` package).
#[derive(Debug, Clone)]
pub struct LlvmTools {
    pub nm: std::path::PathBuf,
    pub objcopy: std::path::PathBuf,
    pub ar: std::path::PathBuf,
}

impl LlvmTools {
    pub fn in_dir(bin: &Path) -> Self {
        Self {
            nm: bin.join("llvm-nm"),
            objcopy: bin.join("llvm-objcopy"),
            ar: bin.join("llvm-ar"),
        }
    }
}

/// Entry points the loader or the C side of the ABI needs besides the `sys_*` calls.
pub const KERNEL_EXPLICIT_EXPORTS: &[&str] = &["_start", "__bss_start", "runtime_entry"];

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `sys_*` symbols defined by the kernel's own object files (members named `hermit-*`).
pub fn syscall_symbols(tools: &LlvmTools, archive: &Path) -> Result<BTreeSet<String>> {
    defined_symbols(tools, archive, "hermit-", |s| s.starts_with("sys_"))
}

/// The C functions of the builtins crate (members named `pp_builtins-*`): unmangled, no leading `_`.
pub fn builtin_symbols(tools: &LlvmTools, archive: &Path) -> Result<BTreeSet<String>> {
    defined_symbols(tools, archive, "pp_builtins-", |s| {
        !s.starts_with('_') && !s.starts_with("rust_")
    })
}

/// External symbols defined by members whose name starts with `member_prefix`, filtered.
fn defined_symbols(
    tools: &LlvmTools,
    archive: &Path,
    member_prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<BTreeSet<String>> {
    let text = output(
        Command::new(&tools.nm)
            .args(["-A", "--defined-only", "--extern-only"])
            .arg(archive),
    )?;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        // "<archive>:<member>: <addr> <type> <symbol>"
        let Some(symbol) = line.split_whitespace().last() else {
            continue;
        };
        let Some(head) = line.strip_prefix(&format!("{}:", archive.display())) else {
            continue;
        };
        let member = head.split(':').next().unwrap_or("");
        if member.starts_with(member_prefix) && keep(symbol) {
            out.insert(symbol.to_owned());
        }
    }
    if out.is_empty() {
        bail!(
            "{} defines no symbols to export in {member_prefix}* members",
            archive.display()
        );
    }
    Ok(out)
}

/// Rename every exported symbol not in `keep` to `<prefix>_<symbol>` (mangled names get the prefix
/// as an extra leading path component), in place.
pub fn retain_symbols(
    tools: &LlvmTools,
    archive: &Path,
    prefix: &str,
    keep: &BTreeSet<String>,
) -> Result<()> {
    let all = output(Command::new(&tools.nm).arg("--export-symbols").arg(archive))?;
    let mut renames = String::new();
    for symbol in all.lines().map(str::trim).filter(|s| !s.is_empty()) {
        if keep.contains(symbol) {
            continue;
        }
        match symbol.strip_prefix("_ZN") {
            Some(rest) => writeln!(renames, "{symbol} _ZN{}{prefix}{rest}", prefix.len())?,
            None => writeln!(renames, "{symbol} {prefix}_{symbol}")?,
        }
    }
    let list = archive.with_extension("redefine-syms");
    fs::write(&list, renames)?;
    let status = Command::new(&tools.objcopy)
        .arg(format!("--redefine-syms={}", list.display()))
        .arg(archive)
        .status()?;
    fs::remove_file(&list)?;
    if !status.success() {
        bail!(
            "llvm-objcopy --redefine-syms failed on {}",
            archive.display()
        );
    }
    Ok(())
}

/// Append the members of `other` to `archive` (flattening it), deterministically.
pub fn append(tools: &LlvmTools, archive: &Path, other: &Path) -> Result<()> {
    let status = Command::new(&tools.ar)
        .arg("qLD")
        .arg(archive)
        .arg(other)
        .status()?;
    if !status.success() {
        bail!(
            "llvm-ar failed appending {} to {}",
            other.display(),
            archive.display()
        );
    }
    Ok(())
}

const AR_MAGIC: &[u8] = b"!<arch>\n";
const AR_HEADER_LEN: usize = 60;
const EI_OSABI: usize = 7;
/// `ELFOSABI_STANDALONE`: what the Hermit target's linker expects of the kernel's objects.
pub const ELFOSABI_STANDALONE: u8 = 255;

/// Set the ELF OS/ABI byte of every ELF member of an `ar` archive held in memory.
/// Returns how many members were changed.
pub fn set_osabi(bytes: &mut [u8], osabi: u8) -> Result<usize> {
    if !bytes.starts_with(AR_MAGIC) {
        bail!("not an ar archive");
    }
    let mut pos = AR_MAGIC.len();
    let mut changed = 0;
    while pos < bytes.len() {
        if bytes.len() - pos < AR_HEADER_LEN {
            bail!("truncated ar member header at offset {pos}");
        }
        let header = &bytes[pos..pos + AR_HEADER_LEN];
        if &header[58..60] != b"`\n" {
            bail!("bad ar member header at offset {pos}");
        }
        let size: usize = std::str::from_utf8(&header[48..58])?
            .trim()
            .parse()
            .with_context(|| format!("bad ar member size at offset {pos}"))?;
        let data = pos + AR_HEADER_LEN;
        let end = data.checked_add(size).filter(|&e| e <= bytes.len());
        let Some(end) = end else {
            bail!("ar member at offset {pos} runs past the end")
        };
        if size > EI_OSABI && bytes[data..].starts_with(b"\x7fELF") {
            bytes[data + EI_OSABI] = osabi;
            changed += 1;
        }
        pos = end + (size & 1);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            644,
            data.len()
        )
        .into_bytes();
        h.extend_from_slice(data);
        if data.len() % 2 == 1 {
            h.push(b'\n');
        }
        h
    }

    #[test]
    fn sets_osabi_on_elf_members_only() {
        let mut ar = AR_MAGIC.to_vec();
        ar.extend(member("/", b"symtab"));
        ar.extend(member("a.o/", b"\x7fELF\x02\x01\x01\x00rest"));
        ar.extend(member("b.o/", b"\x7fELF\x02\x01\x01\x00odd"));
        assert_eq!(set_osabi(&mut ar, ELFOSABI_STANDALONE).unwrap(), 2);
        let count = ar
            .windows(8)
            .filter(|w| *w == b"\x7fELF\x02\x01\x01\xff")
            .count();
        assert_eq!(count, 2);
    }

    #[test]
    fn rejects_truncated_archives() {
        let mut ar = AR_MAGIC.to_vec();
        ar.extend(member("a.o/", b"\x7fELF\x02\x01\x01\x00rest"));
        ar.truncate(ar.len() - 3);
        assert!(set_osabi(&mut ar, 255).is_err());
        assert!(set_osabi(&mut b"nope".to_vec(), 255).is_err());
    }
}
