//! Running edk2's build in the fixed build folder: the lock, the environment, the logs.

use super::*;

/// Take the build folder for this process (another checkout may build at the same fixed path).
pub(super) fn lock_build_dir(build_dir: &Path) -> Result<fs::File> {
    let path = build_dir.join(".lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if file.try_lock().is_err() {
        eprintln!(
            "ovmf: waiting for another OVMF build in {}",
            build_dir.display()
        );
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(file)
}

/// The `build` arguments for one firmware.
pub(super) fn build_args(pins: &OvmfPins, fw: &FirmwarePin) -> Vec<String> {
    let threads = pins.build.threads.to_string();
    let mut args: Vec<String> = [
        "-n",
        &threads,
        "-a",
        &pins.build.arch,
        "-t",
        &pins.build.toolchain,
        "-b",
        &pins.build.target,
        "-p",
        &fw.dsc,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for define in &fw.defines {
        args.push("-D".to_owned());
        args.push(define.clone());
    }
    args
}

/// A bash that sources `edksetup.sh` in the WORKSPACE and runs `script` (which sees `args` as
/// the array `args`), in a clean environment: only the system PATH and the pinned python3, so
/// nothing of the caller's environment (pyenv, compiler flags) reaches the build.
pub(super) fn edk2_shell(pins: &OvmfPins, ws: &Path, script: &str, args: &[String]) -> Command {
    let mut cmd = Command::new("/bin/bash");
    cmd.arg("-c")
        .arg(format!(
            "set -e\nargs=(\"$@\")\nset --\n. ./edksetup.sh\n{script}\n"
        ))
        .arg("bash")
        .args(args)
        .current_dir(ws)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", Path::new(&pins.build.dir).join("home"))
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("TZ", "UTC")
        .env("SOURCE_DATE_EPOCH", "0")
        .env("PYTHON_COMMAND", "/usr/bin/python3")
        .env("PYTHONHASHSEED", "0");
    cmd
}

/// Run a command with its output in `log`; on failure, show the log's last lines.
pub(super) fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdout(file.try_clone()?).stderr(file);
    let status = cmd
        .status()
        .with_context(|| format!("could not start {}", describe(cmd)))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        bail!(
            "the {what} build failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail(&text, 30)
        );
    }
    Ok(())
}

pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(super) fn minutes(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}
