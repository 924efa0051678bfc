//! pp-dev-certs: a throwaway CA and certificates for a loopback demo or test. Never for
//! production: a real relay and gateway use certificates from a public CA.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Write a development CA (ca.pem) and NAME.pem/NAME.key for each name."
)]
struct Args {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// DNS names to issue certificates for.
    #[arg(required = true)]
    names: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
    pp_services::tls::write_dev_certs(&args.out, &names)?;
    println!(
        "wrote a development CA and {} certificate(s) to {}",
        names.len(),
        args.out.display()
    );
    Ok(())
}
