//! The enclave's features behind [`Handler`]: `summarize` (MiniLM embeddings pick central,
//! non-redundant messages; SmolLM2 writes 2–4 bullets citing them) and `suggest` (SmolLM2 replies), from the weights blob. Requests and
//! answers are `pp_protocol::app` JSON; a request the features refuse gets an in-band error code,
//! never text from the request.

use std::sync::Arc;

use burn::tensor::Device;
use pp_inference::abstractive;
use pp_inference::bert::BertConfig;
use pp_inference::blob::WeightsBlob;
use pp_inference::bundle::entry;
use pp_inference::error::LoadError;
use pp_inference::qmat::SharedBytes;
use pp_inference::suggest::{self, Generator};
use pp_inference::summarize::Embedder;
use pp_protocol::app::{AppError, AppRequest, AppResponse, Bullet};
use zeroize::Zeroize;

use crate::handler::{Handler, HandlerError};

/// Why the features could not be loaded. No model bytes in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFailure {
    Blob,
    MissingEntry(&'static str),
    UnknownProfile,
    Embedder,
    Generator,
}

/// The loaded models.
pub struct Features {
    embedder: Embedder,
    generator: Generator,
    /// `real` or `tiny` (seeded random weights of the same architectures, for tests).
    pub profile: &'static str,
}

impl Features {
    /// Parses the blob (header, bounds and every entry's sha256) and loads both models; the
    /// decoder's matrices are copied out of `blob` (in their stored block types).
    pub fn load(blob: &[u8]) -> Result<Self, LoadFailure> {
        Self::load_with(blob, Generator::from_gguf_bytes)
    }

    /// As [`Features::load`] for a blob that lives as long as the program (the enclave's
    /// measured blob): the decoder's matrices point into it, so no second copy of the weights
    /// exists.
    pub fn load_static(blob: &'static [u8]) -> Result<Self, LoadFailure> {
        Self::load_with(blob, |gguf: &'static [u8], dev| {
            Generator::from_shared_gguf(SharedBytes::new(Arc::new(gguf)), dev)
        })
    }

    fn load_with<'a>(
        blob: &'a [u8],
        generator: impl FnOnce(&'a [u8], &Device) -> Result<Generator, LoadError>,
    ) -> Result<Self, LoadFailure> {
        let blob = WeightsBlob::parse(blob).map_err(|_| LoadFailure::Blob)?;
        let get = |name: &'static str| blob.get(name).ok_or(LoadFailure::MissingEntry(name));
        let (profile, config) = match get(entry::PROFILE)? {
            b"real" => ("real", BertConfig::minilm_l6()),
            b"tiny" => ("tiny", pp_inference::tiny::tiny_bert_config()),
            _ => return Err(LoadFailure::UnknownProfile),
        };
        let dev = Device::flex();
        let embedder = Embedder::from_bytes(
            get(entry::MINILM)?,
            get(entry::MINILM_TOKENIZER)?,
            config,
            &dev,
        )
        .map_err(|_| LoadFailure::Embedder)?;
        let generator =
            generator(get(entry::SMOLLM2)?, &dev).map_err(|_| LoadFailure::Generator)?;
        Ok(Self {
            embedder,
            generator,
            profile,
        })
    }

    /// Runs the feature a parsed (so bounds-checked) request asks for. The models read the
    /// request's own thread; a pick is a message's position in it.
    fn answer(&self, request: &AppRequest) -> AppResponse {
        let thread = request.thread();
        match request {
            AppRequest::Summarize { k, .. } => {
                let k = usize::from(*k).min(thread.len());
                match abstractive::summarize(&self.embedder, &self.generator, thread, k) {
                    Ok(mut summary) => {
                        let mut picks: Vec<u16> = summary
                            .extractive
                            .key_messages
                            .iter()
                            .map(|m| m.index as u16)
                            .collect();
                        picks.sort_unstable();
                        let bullets = summary
                            .bullets
                            .iter_mut()
                            .map(|b| {
                                let text = std::mem::take(&mut b.text);
                                b.wipe();
                                Bullet {
                                    text,
                                    cites: b.cites.iter().map(|&i| i as u16).collect(),
                                }
                            })
                            .collect();
                        AppResponse::Summary {
                            bullets,
                            picks,
                            truncated: summary.extractive.truncated.len() as u16,
                            left_out: summary.left_out as u16,
                        }
                    }
                    Err(_) => AppResponse::Error(AppError::ModelRefused),
                }
            }
            AppRequest::Suggest { seed, n, .. } => {
                match suggest::suggest(&self.generator, thread, *seed, usize::from(*n)) {
                    Ok(mut s) => AppResponse::Suggestions {
                        replies: s
                            .iter_mut()
                            .map(|s| {
                                let text = std::mem::take(&mut s.text);
                                s.wipe();
                                text
                            })
                            .collect(),
                    },
                    Err(_) => AppResponse::Error(AppError::ModelRefused),
                }
            }
        }
    }
}

impl Handler for Features {
    fn handle(&self, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        let mut response = match AppRequest::parse(request) {
            Ok(mut request) => {
                let response = self.answer(&request);
                request.wipe();
                response
            }
            Err(code) => AppResponse::Error(code),
        };
        let bytes = response.to_vec();
        wipe_response(&mut response);
        Ok(bytes)
    }
}

/// Overwrites the replies (text about the thread) once they are encoded.
fn wipe_response(response: &mut AppResponse) {
    match response {
        AppResponse::Suggestions { replies } => replies.iter_mut().for_each(Zeroize::zeroize),
        AppResponse::Summary { bullets, .. } => {
            bullets.iter_mut().for_each(|b| b.text.zeroize());
        }
        AppResponse::Error(_) => {}
    }
}

/// The features, loaded on the first request rather than at boot: checking and loading the real
/// models takes seconds natively and many minutes under emulation, and a boot that serves only
/// health checks or refuses attestation never needs them. A blob that fails to load fails every
/// request with `model-refused`, and says why once on the console.
pub struct LazyFeatures {
    blob: &'static [u8],
    loaded: std::sync::OnceLock<Result<Features, LoadFailure>>,
}

impl LazyFeatures {
    /// Checks only that `blob` starts like a weights blob; the rest is checked on first use.
    pub fn new(blob: &'static [u8]) -> Result<Self, LoadFailure> {
        if !blob.starts_with(&pp_inference::blob::MAGIC[..]) {
            return Err(LoadFailure::Blob);
        }
        Ok(Self {
            blob,
            loaded: std::sync::OnceLock::new(),
        })
    }

    /// The loaded features, loading them now if this is the first call.
    pub fn get(&self) -> Result<&Features, LoadFailure> {
        self.loaded
            .get_or_init(|| {
                let loaded = Features::load_static(self.blob);
                match &loaded {
                    Ok(f) => println!("pp-workload: models loaded ({})", f.profile),
                    Err(e) => println!("pp-workload: models refused: {e:?}"),
                }
                loaded
            })
            .as_ref()
            .map_err(|e| *e)
    }
}

impl Handler for LazyFeatures {
    fn handle(&self, request: &[u8]) -> Result<Vec<u8>, HandlerError> {
        match self.get() {
            Ok(features) => features.handle(request),
            Err(_) => Ok(AppResponse::Error(AppError::ModelRefused).to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pp_protocol::app::Message;

    #[test]
    fn wiping_leaves_no_text() {
        let message = Message {
            sender: "Ana".into(),
            text: "dinner at six?".into(),
            time: Some("09:14".into()),
        };
        let mut request = AppRequest::Suggest {
            thread: vec![message.clone(), message],
            seed: 1,
            n: 1,
        };
        request.wipe();
        assert!(
            request
                .thread()
                .iter()
                .all(|m| m.sender.is_empty() && m.text.is_empty() && m.time.is_none())
        );
        let mut response = AppResponse::Suggestions {
            replies: vec!["see you".into()],
        };
        wipe_response(&mut response);
        assert_eq!(
            response,
            AppResponse::Suggestions {
                replies: vec![String::new()]
            }
        );
        let mut summary = AppResponse::Summary {
            bullets: vec![Bullet {
                text: "Ana asks about dinner.".into(),
                cites: vec![0],
            }],
            picks: vec![0],
            truncated: 0,
            left_out: 0,
        };
        wipe_response(&mut summary);
        let AppResponse::Summary { bullets, .. } = summary else {
            unreachable!()
        };
        assert!(bullets[0].text.is_empty());
    }
}
