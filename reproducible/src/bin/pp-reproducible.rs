//! `pp-reproducible`: the verifier's command line.

use clap::Parser;

fn main() {
    match reproducible::cli::run(reproducible::cli::Cli::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
