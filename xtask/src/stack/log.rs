//! The stack's transparency log: starting it, and the forks and rollbacks the end-to-end test
//! shows devices (a log operator serving different histories).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::{LOG_ORIGIN, Stack};

impl Stack {
    /// Starts `pp-log` on `listen` with the state folder `state`, submitting to the witness.
    pub(crate) fn start_log(&mut self, listen: &str, state: &str) -> Result<(String, Vec<String>)> {
        let credential = self.dir.join("operator.secret").display().to_string();
        let witness = self.witness_url.clone();
        self.spawn(
            "pp-log",
            &[
                "serve",
                "--listen",
                listen,
                "--state",
                state,
                "--operator-credential",
                &credential,
                "--origin",
                LOG_ORIGIN,
                "--witness",
                &witness,
            ],
        )
    }

    /// Replaces the log with a fork of it: the same signing key and size, but `entry` in place of
    /// the last entry (what a log operator showing different devices different histories would
    /// serve). Same address, so devices see it in place of the log.
    pub fn fork_log(&mut self, entry: &Path) -> Result<()> {
        let keep = self.log_entries()?.saturating_sub(1);
        self.fork_log_at(keep, entry)
    }

    /// How many entries the log holds (read from its file).
    pub fn log_entries(&self) -> Result<usize> {
        Ok(self.log_records()?.1.len())
    }

    /// The log file's bytes and where each record ends (a record: `u32` big-endian length, then
    /// the entry).
    fn log_records(&self) -> Result<(Vec<u8>, Vec<usize>)> {
        let records = std::fs::read(self.dir.join("log/log.bin"))?;
        let (mut at, mut ends) = (0usize, Vec::new());
        while let Some(len) = records.get(at..at + 4) {
            at += 4 + u32::from_be_bytes(len.try_into()?) as usize;
            ends.push(at);
        }
        anyhow::ensure!(at == records.len(), "the log file ends mid-record");
        Ok((records, ends))
    }

    /// Like [`Self::fork_log`], but the fork keeps the log's first `keep` entries and then
    /// appends `entry`: to a device that saw only those, a consistent extension.
    pub fn fork_log_at(&mut self, keep: usize, entry: &Path) -> Result<()> {
        let fork = self.dir.join("log-fork");
        let _ = std::fs::remove_dir_all(&fork);
        std::fs::create_dir_all(&fork)?;
        std::fs::copy(self.dir.join("log/log.key"), fork.join("log.key"))?;
        self.stop("pp-log");
        let (records, ends) = self.log_records()?;
        let at = match keep {
            0 => 0,
            n => *ends
                .get(n - 1)
                .context("the log has fewer entries than the fork keeps")?,
        };
        std::fs::write(fork.join("log.bin"), &records[..at])?;
        let listen = self.log_url.trim_start_matches("http://").to_string();
        let credential = self.dir.join("operator.secret").display().to_string();
        let (addr, _) = self.start_log(&listen, &fork.display().to_string())?;
        anyhow::ensure!(addr == listen, "the forked log came up on another address");
        let out = Command::new(self.bin.join("pp-log"))
            .args([
                "append",
                "--url",
                &self.log_url,
                "--operator-credential",
                &credential,
            ])
            .arg(entry)
            .output()?;
        anyhow::ensure!(out.status.success(), "appending to the forked log failed");
        Ok(())
    }

    /// Puts the honest log back at its address (after [`Self::fork_log`]).
    pub fn restore_log(&mut self) -> Result<()> {
        self.stop("pp-log");
        let listen = self.log_url.trim_start_matches("http://").to_string();
        let state = self.dir.join("log").display().to_string();
        let (addr, _) = self.start_log(&listen, &state)?;
        anyhow::ensure!(addr == listen, "the log came back on another address");
        Ok(())
    }

    /// Runs `pp-log` with `args` (e.g. `append`, `revoke`) against this stack's log with the
    /// operator's credential; returns its stdout.
    pub fn log_operator(&self, command: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(self.bin.join("pp-log"))
            .args([command, "--url", &self.log_url, "--operator-credential"])
            .arg(self.dir.join("operator.secret"))
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "pp-log {command} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
