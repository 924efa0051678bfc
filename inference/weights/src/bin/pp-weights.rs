//! pp-weights: makes the enclave's weights blob (embedded in the loader image, `pp.efi`),
//! deterministically.

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: pp-weights real MODELS_DIR OUT   (MODELS_DIR from inference/tools/fetch_models.sh)\n       pp-weights tiny OUT               (seeded random-weight models, for tests)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let made = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["tiny", out] => pp_weights::bundle::tiny_blob(pp_weights::bundle::TINY_SEED)
            .map_err(|e| format!("{e}"))
            .map(|b| (b, PathBuf::from(out))),
        ["real", dir, out] => {
            let dir = PathBuf::from(dir);
            let read = |name: &str| {
                std::fs::read(dir.join(name))
                    .map_err(|e| format!("cannot read {}: {e}", dir.join(name).display()))
            };
            (|| {
                let blob = pp_weights::bundle::real(
                    &read("model.safetensors")?,
                    &read("tokenizer.json")?,
                    &read("SmolLM2-135M-Instruct.Q4_1.gguf")?,
                )
                .map_err(|e| format!("{e}"))?;
                Ok((blob, PathBuf::from(out)))
            })()
        }
        _ => return usage(),
    };
    match made.and_then(|(blob, out)| {
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, &blob)
            .and_then(|_| std::fs::rename(&tmp, &out))
            .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        println!(
            "{} {} bytes sha256 {}",
            out.display(),
            blob.len(),
            hex_string(&pp_weights_blob::blob_sha256(&blob))
        );
        Ok(())
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pp-weights: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
