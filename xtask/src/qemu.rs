//! QEMU runs of the image: the command line, the serial log, and waiting for lines in it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub const QEMU: &str = "qemu-system-x86_64";
/// Guest ports of the workload (see workload/src/main.rs).
pub const GUEST_HEALTH_PORT: u16 = 8080;
pub const GUEST_TLS_PORT: u16 = 8443;
pub const GUEST_ONESHOT_PORT: u16 = 8444;
/// The CPU model of every TCG boot: `max` (the kernel uses FSGSBASE).
pub const CPU: &str = "max";
/// The same without RDSEED and RDRAND: QEMU then raises #UD for them, as a CPU without them would.
pub const CPU_WITHOUT_RNG: &str = "max,-rdseed,-rdrand";

/// What one boot uses.
#[derive(Debug, Clone)]
pub struct BootConfig {
    pub firmware: PathBuf,
    pub efi: PathBuf,
    pub append: String,
    pub cpus: u32,
    /// QEMU `-cpu` ([`CPU`] unless a test takes something away).
    pub cpu: String,
    pub memory_mib: u32,
    pub host_health_port: u16,
    pub host_tls_port: u16,
    /// Host port forwarded to the workload's one-shot port (plain TCP, sealed requests).
    pub host_oneshot_port: u16,
    /// Extra ACPI tables QEMU adds (`-acpitable file=…`; a test's malformed table).
    pub acpi_tables: Vec<PathBuf>,
}

impl BootConfig {
    /// The QEMU command line: TCG (this machine's KVM cannot run OVMF), q35, `-cpu` as configured,
    /// modern-only virtio-net with the three workload ports forwarded to loopback.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(QEMU);
        cmd.args(["-accel", "tcg", "-machine", "q35", "-cpu", &self.cpu])
            .args(["-nographic", "-no-reboot"])
            .args(["-smp", &self.cpus.to_string(), "-m", &format!("{}M", self.memory_mib)])
            .arg("-bios")
            .arg(&self.firmware)
            .arg("-kernel")
            .arg(&self.efi)
            .args(["-append", &self.append])
            .arg("-netdev")
            .arg(format!(
                "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:{GUEST_HEALTH_PORT},hostfwd=tcp:127.0.0.1:{}-:{GUEST_TLS_PORT},hostfwd=tcp:127.0.0.1:{}-:{GUEST_ONESHOT_PORT}",
                self.host_health_port, self.host_tls_port, self.host_oneshot_port
            ))
            .args(["-device", "virtio-net-pci,netdev=net0,disable-legacy=on"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        for table in &self.acpi_tables {
            cmd.arg("-acpitable")
                .arg(format!("file={}", table.display()));
        }
        cmd
    }
}

/// A free TCP port on loopback (released again before QEMU binds it).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running VM whose serial console is collected line by line. Killed on drop.
pub struct Vm {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub started: Instant,
}

impl Vm {
    pub fn start(config: &BootConfig, echo: bool) -> Result<Self> {
        let mut cmd = config.command();
        let line = crate::util::describe(&cmd);
        match line.char_indices().nth(600) {
            Some((cut, _)) => {
                eprintln!("boot: {}… ({} more bytes)", &line[..cut], line.len() - cut)
            }
            None => eprintln!("boot: {line}"),
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {QEMU}: run `cargo xtask setup`"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                while reader
                    .read_until(b'\n', &mut buf)
                    .map(|n| n > 0)
                    .unwrap_or(false)
                {
                    let line = strip_ansi(&String::from_utf8_lossy(&buf))
                        .trim_end()
                        .to_string();
                    if echo {
                        println!("  | {line}");
                    }
                    lines.lock().unwrap().push(line);
                    buf.clear();
                }
            });
        }
        Ok(Self {
            child,
            lines,
            started: Instant::now(),
        })
    }

    /// Wait until a serial line contains `needle`; fail early on a line containing any of `fatal`,
    /// or when QEMU exits.
    pub fn wait_for(&mut self, needle: &str, fatal: &[&str], timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            {
                let lines = self.lines.lock().unwrap();
                for line in &lines[seen..] {
                    if line.contains(needle) {
                        return Ok(line.clone());
                    }
                    if let Some(f) = fatal.iter().find(|f| line.contains(**f)) {
                        bail!(
                            "the guest reported a failure ({f}): {line}\n{}",
                            self.tail(&lines)
                        );
                    }
                }
                seen = lines.len();
            }
            if let Some(status) = self.child.try_wait()? {
                std::thread::sleep(Duration::from_millis(200));
                let lines = self.lines.lock().unwrap();
                bail!(
                    "QEMU exited ({status}) before {needle:?} appeared\n{}",
                    self.tail(&lines)
                );
            }
            if Instant::now() > deadline {
                let lines = self.lines.lock().unwrap();
                bail!(
                    "no {needle:?} on the serial console within {} s\n{}",
                    timeout.as_secs(),
                    self.tail(&lines)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn tail(&self, lines: &[String]) -> String {
        let start = lines.len().saturating_sub(20);
        lines[start..]
            .iter()
            .map(|l| format!("  | {l}\n"))
            .collect()
    }

    /// Every serial line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Wait for QEMU to end by itself.
    pub fn wait(&mut self) -> Result<std::process::ExitStatus> {
        Ok(self.child.wait()?)
    }

    /// Wait for QEMU to end by itself within `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let lines = self.lines.lock().unwrap();
                bail!(
                    "QEMU did not exit within {} s\n{}",
                    timeout.as_secs(),
                    self.tail(&lines)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Check an image folder before booting it: `pp.efi` must be a PE image whose sha256 matches
/// the folder's `manifest.json`.
pub fn check_image_dir(dir: &Path) -> Result<PathBuf> {
    let efi = dir.join("pp.efi");
    let bytes = std::fs::read(&efi).with_context(|| {
        format!(
            "no image at {}: run `cargo xtask image --out {}`",
            efi.display(),
            dir.display()
        )
    })?;
    let pe_offset = bytes
        .get(0x3c..0x40)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
    let is_pe = bytes.starts_with(b"MZ")
        && pe_offset
            .and_then(|o| bytes.get(o..o + 4))
            .is_some_and(|sig| sig == b"PE\0\0");
    if !is_pe {
        bail!(
            "{} is not a UEFI (PE) image: rebuild it with `cargo xtask image`",
            efi.display()
        );
    }
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "no manifest at {}: rebuild with `cargo xtask image`",
            manifest_path.display()
        )
    })?;
    let manifest = reproducible::Manifest::from_json(&text)?;
    let got = reproducible::sha256_hex(&bytes);
    if got != manifest.image.sha256 {
        bail!(
            "{} has sha256 {got}, but its manifest says {}: the image is corrupt or was replaced; rebuild it with `cargo xtask image`",
            efi.display(),
            manifest.image.sha256
        );
    }
    Ok(efi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_codes() {
        assert_eq!(
            strip_ansi("[0][\u{1b}[32mINFO\u{1b}[0m] x\r"),
            "[0][INFO] x"
        );
    }

    #[test]
    fn refuses_corrupt_images() {
        let dir = std::env::temp_dir().join(format!("pp-image-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            check_image_dir(&dir)
                .unwrap_err()
                .to_string()
                .contains("no image")
        );
        std::fs::write(
            dir.join("pp.efi"),
            b"not a PE file at all, just text......................",
        )
        .unwrap();
        assert!(
            check_image_dir(&dir)
                .unwrap_err()
                .to_string()
                .contains("not a UEFI")
        );
        let mut pe = vec![0u8; 0x100];
        pe[..2].copy_from_slice(b"MZ");
        pe[0x3c] = 0x80;
        pe[0x80..0x84].copy_from_slice(b"PE\0\0");
        std::fs::write(dir.join("pp.efi"), &pe).unwrap();
        assert!(
            check_image_dir(&dir)
                .unwrap_err()
                .to_string()
                .contains("no manifest")
        );
        let manifest = reproducible::Manifest {
            schema: reproducible::SCHEMA.into(),
            image: reproducible::Artifact {
                file: "pp.efi".into(),
                size: 256,
                sha256: reproducible::sha256_hex(&pe),
            },
            components: Default::default(),
            inputs: Default::default(),
            toolchain: vec![],
            patched_crates: Default::default(),
            firmware: Default::default(),
            measurement: reproducible::Measurement {
                firmware: reproducible::Artifact {
                    file: "OVMF.amdsev.fd".into(),
                    size: 0,
                    sha256: String::new(),
                },
                append: String::new(),
                vcpu_type: "EPYC-v4".into(),
                guest_features: "0x1".into(),
                vmm_type: "QEMU".into(),
                qemu_snp_command: String::new(),
                digests: Default::default(),
            },
            launch_policy: None,
            variant: "release".into(),
            release_ref: String::new(),
            test_attester_measurement: None,
        };
        std::fs::write(dir.join("manifest.json"), manifest.to_json().unwrap()).unwrap();
        assert_eq!(check_image_dir(&dir).unwrap(), dir.join("pp.efi"));
        pe[0xff] ^= 1;
        std::fs::write(dir.join("pp.efi"), &pe).unwrap();
        assert!(
            check_image_dir(&dir)
                .unwrap_err()
                .to_string()
                .contains("corrupt")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
