//! `pp`: Private Processing from the command line. Nothing leaves this device unless a command
//! below asks for it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pp_device::config::{Config, RequestPath};
use pp_device::request::{self, Answer};
use pp_device::show::{self, Breaks, printable};
use pp_protocol::app::{AppRequest, Message};

#[derive(Parser)]
#[command(
    version,
    about = "Summarize a chat thread or suggest replies, inside an attested enclave the operator cannot read."
)]
struct Args {
    /// The configuration file (relay, gateway, issuer, CDN, log, trust, state folder).
    #[arg(long, global = true, default_value = "pp.toml")]
    config: PathBuf,
    /// Print every step and every check of the attestation verdict.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pick the thread's key messages (sent sealed to an attested enclave).
    ///
    /// By default the request is one-shot Oblivious HTTP through the relay: sealed to the
    /// instance's logged publication evidence (no handshake with the enclave; refused when the
    /// logged index is older than the key period plus slack). `--session` (or `[request] path =
    /// "session"`) opens an attested TLS session instead, with fresh evidence for the session.
    Summarize {
        /// The thread: JSON (`[{"sender", "text", "time"}]`, or `{"advanced_chat_privacy": bool,
        /// "messages": [...]}`) or text lines `[time] sender: text`. A chat with Advanced Chat
        /// Privacy on (the JSON field, or the text line `#! advanced-chat-privacy: on`) is never sent.
        thread: PathBuf,
        /// How many messages to pick (1..=10).
        #[arg(short, default_value_t = 3)]
        k: u8,
        #[command(flatten)]
        path: PathArg,
    },
    /// Suggest short replies to the thread's last message (sent sealed to an attested enclave).
    ///
    /// By default one-shot Oblivious HTTP, sealed to the instance's logged publication evidence;
    /// `--session` for an attested TLS session with fresh evidence (see `pp summarize --help`).
    Suggest {
        /// The thread, in the forms `pp summarize --help` lists (a private chat is never sent).
        thread: PathBuf,
        /// How many suggestions (1..=3).
        #[arg(short, default_value_t = 3)]
        n: u8,
        /// Sampling seed (the same seed gives the same suggestions from the same enclave).
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[command(flatten)]
        path: PathArg,
    },
    /// Check that a release manifest is in the transparency log and print what it allows.
    VerifyRelease { manifest: PathBuf },
    /// Re-verify a receipt offline (no network), with the configured log key and trusted roots.
    CheckReceipt { receipt: PathBuf },
    /// Verify a captured SEV-SNP attestation report offline (no configuration, no network).
    ///
    /// Checks the report, its VCEK and the ASK/ARK against AMD's built-in roots with the device's
    /// own verifier and prints every check. Exit status: 0 accepted, 1 refused, 2 usage or input
    /// error.
    VerifyReport(Box<pp_device::verify_report::Args>),
    /// Check a tamper-evidence file the device wrote (a log fork, a revoked release, a stale
    /// tree head, a swapped enclave) offline: every signature and proof in it, with the
    /// configured log key (and for a swapped enclave the configured witnesses and trusted
    /// roots). Exit status: 0 it proves what it says, 1 it does not, 2 unreadable, or
    /// (`--log-url`) unresolved.
    CheckEvidence {
        file: PathBuf,
        /// For an inconsistent-heads file only: ask the log at this URL — which must be the
        /// configured log's (`[log] url`), https or http on loopback — for a consistency proof
        /// between the two sizes. Proven only if the URL serves a checkpoint signed by the log covering both sizes and answers HTTP 200 with a
        /// proof for exactly them that does not verify; any other answer is UNRESOLVED (exit 2).
        #[arg(long)]
        log_url: Option<String>,
    },
    /// The anonymous tokens kept for the gateway (see `pp tokens refill --help`).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Turn AI features on for this device: until then `summarize`, `suggest` and `tokens refill`
    /// send nothing.
    OptIn,
    /// Turn AI features off and delete the tokens and receipts kept on this device.
    OptOut,
}

/// Which path a request takes.
#[derive(clap::Args)]
struct PathArg {
    /// Use an attested TLS session (through the CONNECT relay and the gateway): the enclave sends
    /// fresh evidence for this session, bound to a nonce, at the cost of a handshake per request.
    /// Without it (unless `[request] path = "session"`), the request is one-shot Oblivious HTTP
    /// through the relay: sealed to the key the instance's logged publication evidence binds,
    /// with no handshake, and only while the logged index is no older than the key period plus
    /// slack.
    #[arg(long)]
    session: bool,
}

impl PathArg {
    fn path(&self, config: &Config) -> RequestPath {
        if self.session {
            RequestPath::Session
        } else {
            config.request.path
        }
    }
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Fetch tokens now, apart from any request (run it from a scheduler at times of its own).
    ///
    /// A token fetch carries the account credential from this device's address; one made
    /// right before a request would let the operator, who runs issuer and gateway, link that
    /// request to the account by time. `pp` fetches only after a request, when fewer than
    /// `issuer.low_water` tokens of keys valid a day ahead are left, or when the wallet is
    /// empty before a spend; refilling ahead of time keeps both rare.
    Refill {
        /// Fetch batches until at least this many tokens are held (default: the low-water mark
        /// plus one batch).
        #[arg(long)]
        min: Option<usize>,
    },
    /// Print how many tokens are held of logged issuer keys valid now (no network; reads only,
    /// the wallet is not changed).
    Count,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Command::VerifyReport(report) = &args.command {
        return verify_report(report);
    }
    if let Command::CheckEvidence { file, log_url } = &args.command {
        return check_evidence(file, &args.config, log_url.as_deref());
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", show::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// Prints one line (or several the device made) to stdout, outside text made printable.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", printable(&format!($($arg)*), Breaks::Keep))
    };
}

fn run(args: &Args) -> Result<()> {
    let config = Config::load(&args.config)?;
    let verbose = args.verbose;
    // The warnings that a spend follows a token fetch closely, or that a refill failed, are
    // printed always.
    let mut trace = |line: String| {
        if verbose
            || line.starts_with(request::CLOSE_TO_ISSUANCE)
            || line.starts_with(request::REFILL_FAILED)
        {
            eprintln!("{}", printable(&format!("pp: {line}"), Breaks::Keep));
        }
    };
    match &args.command {
        Command::Summarize { thread, k, path } => {
            let thread = read_thread(thread)?;
            let request = AppRequest::Summarize {
                thread: thread.clone(),
                k: *k,
            };
            let answer = request::ask(&config, &request, path.path(&config), &mut trace)?;
            report(&answer, verbose);
            for line in show::answer_lines(&answer.response, &thread)? {
                say!("{line}");
            }
            Ok(())
        }
        Command::Suggest {
            thread,
            n,
            seed,
            path,
        } => {
            let request = AppRequest::Suggest {
                thread: read_thread(thread)?,
                seed: *seed,
                n: *n,
            };
            let answer = request::ask(&config, &request, path.path(&config), &mut trace)?;
            report(&answer, verbose);
            for line in show::answer_lines(&answer.response, request.thread())? {
                say!("{line}");
            }
            Ok(())
        }
        Command::VerifyRelease { manifest } => verify_release(&config, manifest, &mut trace),
        Command::CheckReceipt { receipt } => check_receipt(&config, receipt, verbose),
        Command::Tokens(TokensCommand::Refill { min }) => {
            let min = min
                .unwrap_or(usize::from(config.issuer.low_water) + usize::from(config.issuer.batch));
            let (before, after) = request::refill_tokens(&config, min, &mut trace)?;
            match after > before {
                true => say!("Fetched tokens: {before} held before, {after} now."),
                false => say!("{after} tokens held (at least {min}): nothing fetched."),
            }
            Ok(())
        }
        Command::OptIn => {
            match pp_device::consent::opt_in(&config.state_dir)? {
                true => say!(
                    "AI features are on for this device. Requests are sealed to attested enclaves; `pp opt-out` turns them off."
                ),
                false => say!("AI features were already on for this device."),
            }
            Ok(())
        }
        Command::OptOut => {
            let removed = pp_device::consent::opt_out(&config.state_dir)?;
            say!(
                "AI features are off for this device: nothing is sent until `pp opt-in`. {}",
                match (removed.wallet, removed.receipt_paths > 0) {
                    (false, false) => "There were no tokens or receipts to delete.",
                    (true, false) => "The tokens were deleted (there were no receipts).",
                    (false, true) => "The receipts were deleted (there were no tokens).",
                    (true, true) => "The tokens and the receipts were deleted.",
                }
            );
            Ok(())
        }
        Command::Tokens(TokensCommand::Count) => {
            let now = pp_translog::checkpoint::unix_now();
            let held = pp_device::wallet::Wallet::new(&config.state_dir).available(now)?;
            say!("{held} tokens held of logged issuer keys valid now.");
            Ok(())
        }
        Command::VerifyReport(_) | Command::CheckEvidence { .. } => {
            unreachable!("handled in main: it reads no configuration")
        }
    }
}

/// `pp verify-report`: exit 0 accepted, 1 refused (verdict printed), 2 bad input.
fn verify_report(args: &pp_device::verify_report::Args) -> ExitCode {
    match pp_device::verify_report::audit(args) {
        Ok(audit) => {
            print!("{}", printable(&audit.to_string(), Breaks::Keep));
            if audit.accepted() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("{}", printable(&format!("pp: {e}"), Breaks::Keep));
            ExitCode::from(2)
        }
    }
}

/// `pp check-evidence`: exit 0 proven, 1 not proven, 2 unreadable or unresolved (`--log-url`:
/// the log's answer could neither prove nor clear it). The log key in the file is
/// compared with the configured log's when the configuration can be read.
fn check_evidence(file: &Path, config: &Path, log_url: Option<&str>) -> ExitCode {
    let loaded = Config::load(config).map_err(|e| format!("{e:#}"));
    match pp_device::evidence::check(file, loaded.as_ref().map_err(Clone::clone), log_url) {
        Ok(Ok(proven)) => {
            // Fields from the file are inside these lines: escape every control character but
            // the line breaks between the checker's own lines.
            for line in proven.lines() {
                println!("{}", printable(line, Breaks::Escape));
            }
            ExitCode::SUCCESS
        }
        Ok(Err(why)) => {
            println!(
                "{}",
                printable(&format!("NOT PROVEN: {why}"), Breaks::Escape)
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{}", printable(&format!("pp: {e:#}"), Breaks::Escape));
            ExitCode::from(2)
        }
    }
}

/// Reads a thread; a chat marked private is refused here, before anything is sent.
fn read_thread(path: &Path) -> Result<Vec<Message>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the thread {}", path.display()))?;
    pp_device::thread::parse(&text)?.require_shareable()
}

fn report(answer: &Answer, verbose: bool) {
    let instance = printable(&answer.instance, Breaks::Escape);
    let (evidence, how) = match answer.path {
        RequestPath::Session => ("the session with", "attested session, fresh evidence"),
        RequestPath::Oneshot => (
            "the logged publication evidence of",
            "one-shot OHTTP, sealed to its logged publication evidence",
        ),
    };
    if verbose {
        eprintln!(
            "{}",
            printable(
                &format!(
                    "pp: attestation verdict of {evidence} instance {instance}:\n{}",
                    answer.verdict
                ),
                Breaks::Keep
            )
        );
    }
    say!(
        "Verified enclave {instance}: measurement {} ({how})",
        hex::encode(answer.measurement)
    );
    say!(
        "Release logged at index {} (the CDN index at {}); receipt: {}",
        answer.receipt.release.log_index,
        answer.receipt.index.log_index,
        answer.receipt_path.display()
    );
}

/// `pp check-receipt`: the receipt re-verified offline, or the reason it is refused.
fn check_receipt(config: &Config, receipt: &Path, verbose: bool) -> Result<()> {
    let checked = pp_device::check_receipt::check(receipt, config)
        .with_context(|| format!("the receipt {} does not check", receipt.display()))?;
    if verbose {
        eprintln!("{}", printable(&checked.verdict.to_string(), Breaks::Keep));
    }
    let evidence = match checked.path {
        pp_translog::receipt::ReceiptPath::Session => "the session's report",
        pp_translog::receipt::ReceiptPath::Oneshot => {
            "one-shot request: the instance's publication report, the index's age"
        }
    };
    say!(
        "Receipt checks: instance {} ran release {} (log index {}), listed in the CDN index at \
         log index {}; {evidence}, certificate chain, measurement, inclusion proofs and \
         witnessed tree head verified",
        checked.instance,
        checked.release_ref,
        checked.release_index,
        checked.index_index
    );
    if checked.path == pp_translog::receipt::ReceiptPath::Oneshot {
        say!(
            "A one-shot receipt holds only public data (the publication evidence, the index, the \
             manifest, the tree head): it shows what this device sealed its request to, not that \
             a request was made or answered."
        );
    }
    Ok(())
}

fn verify_release(config: &Config, manifest: &Path, trace: request::Trace<'_>) -> Result<()> {
    let bytes =
        std::fs::read(manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    std::fs::create_dir_all(&config.state_dir)?;
    let reader = pp_device::reads::Reader::through_relay(config)?;
    let log = pp_device::releases::LogClient::sync(&config.log, &config.state_dir, reader)?;
    trace(format!("log: tree head size {}", log.tree_head().size));
    let release = log.logged_release(bytes)?;
    say!(
        "Release {} ({}) is in the transparency log at index {} (tree size {}).",
        release.manifest.release_ref,
        release.manifest.variant,
        release.log_index,
        log.tree_head().size
    );
    say!("Image pp.efi sha256 {}", release.manifest.image.sha256);
    for (vcpus, digest) in &release.manifest.measurement.digests {
        say!("  launch digest, {vcpus} vCPU(s): {digest}");
    }
    if let Some(m) = &release.manifest.test_attester_measurement {
        say!("  test attester measurement (NOT a launch digest): {m}");
    }
    for line in pp_device::launch_policy::describe(&release.manifest) {
        say!("{line}");
    }
    say!(
        "To check the image is what the source builds, rebuild it: `cargo xtask verify {}`",
        manifest.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(request: &str) -> Config {
        parse(request).unwrap()
    }

    fn parse(request: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(&format!(
            "state_dir = \"s\"\n\
             [relay]\naddress = \"r:1\"\nserver_name = \"r\"\nohttp_url = \"https://r/\"\n\
             [gateway]\nauthority = \"g:443\"\nserver_name = \"g\"\n\
             [issuer]\nurl = \"http://i\"\ncredential_file = \"c\"\n\
             [cdn]\nurl = \"http://cdn\"\n[log]\nurl = \"http://log\"\npublic_key = \"00\"\n\
             {request}"
        ))
    }

    fn path_of(args: &[&str], config: &Config) -> RequestPath {
        let args = Args::try_parse_from(args).unwrap();
        match &args.command {
            Command::Summarize { path, .. } | Command::Suggest { path, .. } => path.path(config),
            _ => unreachable!(),
        }
    }

    /// One-shot unless `--session` or the configuration asks for the session path.
    #[test]
    fn the_request_path_comes_from_the_flag_then_the_configuration() {
        let default = config("");
        let session = config("[request]\npath = \"session\"\n");
        let oneshot = config("[request]\npath = \"oneshot\"\n");
        assert_eq!(
            path_of(&["pp", "summarize", "t"], &default),
            RequestPath::Oneshot
        );
        assert_eq!(
            path_of(&["pp", "suggest", "t"], &oneshot),
            RequestPath::Oneshot
        );
        assert_eq!(
            path_of(&["pp", "summarize", "t"], &session),
            RequestPath::Session
        );
        assert_eq!(
            path_of(&["pp", "summarize", "t", "--session"], &default),
            RequestPath::Session
        );
        assert_eq!(
            path_of(&["pp", "suggest", "--session", "t"], &oneshot),
            RequestPath::Session
        );
        assert!(parse("[request]\npath = \"tls\"\n").is_err());
    }
}
