//! The MiniLM sentence encoder: a BERT encoder (post-LayerNorm, exact GELU, learned position and
//! token-type embeddings) followed by attention-masked mean pooling and L2 normalization, as
//! sentence-transformers' all-MiniLM-L6-v2 defines it. Weights come from safetensors bytes.

use crate::error::{FeatureError, LoadError};
use crate::tensor::{float, ids, transpose, values};
use burn::tensor::activation::gelu;
use burn::tensor::module::{attention, layer_norm, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Tensor, TensorData};
pub use pp_weights::config::BertConfig;
use safetensors::{Dtype, SafeTensors};

/// Tokens per batch (sum of padded lengths) when embedding many inputs: bounds memory.
const BATCH_TOKENS: usize = 2048;

#[derive(Debug, Clone)]
struct Lin {
    w: Tensor<2>, // [in, out]
    b: Tensor<1>,
}

impl Lin {
    fn fwd(&self, x: Tensor<3>) -> Tensor<3> {
        linear(x, self.w.clone(), Some(self.b.clone()))
    }
}

#[derive(Debug, Clone)]
struct Norm {
    g: Tensor<1>,
    b: Tensor<1>,
}

#[derive(Debug, Clone)]
struct Layer {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    ln_attn: Norm,
    up: Lin,
    down: Lin,
    ln_out: Norm,
}

/// A loaded MiniLM encoder.
#[derive(Debug, Clone)]
pub struct MiniLm {
    cfg: BertConfig,
    word: Tensor<2>,
    pos: Tensor<2>,
    token_type0: Tensor<1>,
    ln_emb: Norm,
    layers: Vec<Layer>,
    device: Device,
}

struct Loader<'a> {
    st: SafeTensors<'a>,
    dev: Device,
}

impl Loader<'_> {
    fn raw(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| LoadError::MissingTensor(name.to_owned()))?;
        if t.dtype() != Dtype::F32 {
            return Err(LoadError::Dtype(name.to_owned()));
        }
        if t.shape() != shape {
            return Err(LoadError::Shape {
                name: name.to_owned(),
                got: t.shape().to_vec(),
                expected: shape.to_vec(),
            });
        }
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
    fn t1(&self, name: &str, n: usize) -> Result<Tensor<1>, LoadError> {
        Ok(float(self.raw(name, &[n])?, [n], &self.dev))
    }
    fn t2(&self, name: &str, rows: usize, cols: usize) -> Result<Tensor<2>, LoadError> {
        Ok(float(
            self.raw(name, &[rows, cols])?,
            [rows, cols],
            &self.dev,
        ))
    }
    /// A PyTorch `[out, in]` linear layer, stored transposed for `x · W`.
    fn lin(&self, prefix: &str, inp: usize, out: usize) -> Result<Lin, LoadError> {
        let w = self.raw(&format!("{prefix}.weight"), &[out, inp])?;
        Ok(Lin {
            w: float(transpose(&w, out, inp), [inp, out], &self.dev),
            b: self.t1(&format!("{prefix}.bias"), out)?,
        })
    }
    fn norm(&self, prefix: &str, n: usize) -> Result<Norm, LoadError> {
        Ok(Norm {
            g: self.t1(&format!("{prefix}.weight"), n)?,
            b: self.t1(&format!("{prefix}.bias"), n)?,
        })
    }
}

impl MiniLm {
    /// Loads the encoder from safetensors bytes (HF `BertModel` names, F32), checking every
    /// tensor's shape against `cfg`.
    pub fn from_safetensors(
        bytes: &[u8],
        cfg: BertConfig,
        dev: &Device,
    ) -> Result<Self, LoadError> {
        if cfg.heads == 0 || !cfg.hidden.is_multiple_of(cfg.heads) || cfg.layers == 0 {
            return Err(LoadError::Config("hidden must be a multiple of heads"));
        }
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| LoadError::Safetensors(e.to_string()))?;
        let l = Loader {
            st,
            dev: dev.clone(),
        };
        let (h, i) = (cfg.hidden, cfg.intermediate);
        let tt = l.raw(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab, h],
        )?;
        let mut layers = Vec::with_capacity(cfg.layers);
        for n in 0..cfg.layers {
            let p = format!("encoder.layer.{n}");
            layers.push(Layer {
                q: l.lin(&format!("{p}.attention.self.query"), h, h)?,
                k: l.lin(&format!("{p}.attention.self.key"), h, h)?,
                v: l.lin(&format!("{p}.attention.self.value"), h, h)?,
                o: l.lin(&format!("{p}.attention.output.dense"), h, h)?,
                ln_attn: l.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                up: l.lin(&format!("{p}.intermediate.dense"), h, i)?,
                down: l.lin(&format!("{p}.output.dense"), i, h)?,
                ln_out: l.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            cfg,
            word: l.t2("embeddings.word_embeddings.weight", cfg.vocab_size, h)?,
            pos: l.t2(
                "embeddings.position_embeddings.weight",
                cfg.max_positions,
                h,
            )?,
            token_type0: float(tt[..h].to_vec(), [h], dev),
            ln_emb: l.norm("embeddings.LayerNorm", h)?,
            layers,
            device: dev.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> BertConfig {
        self.cfg
    }

    fn norm(&self, x: Tensor<3>, n: &Norm) -> Tensor<3> {
        layer_norm(x, n.g.clone(), Some(n.b.clone()), self.cfg.eps)
    }

    /// Embeds one padded batch: `[batch, hidden]`, mean-pooled over real tokens, unit length.
    fn forward(&self, batch: &[&[u32]]) -> Tensor<2> {
        let (b, h, nh) = (batch.len(), self.cfg.hidden, self.cfg.heads);
        let len = batch.iter().map(|s| s.len()).max().unwrap_or(1);
        // The batch's token ids, overwritten when dropped.
        let mut flat = zeroize::Zeroizing::new(vec![0u32; b * len]);
        let mut keep = vec![0f32; b * len];
        let mut pad = vec![false; b * len];
        for (r, s) in batch.iter().enumerate() {
            flat[r * len..r * len + s.len()].copy_from_slice(s);
            keep[r * len..r * len + s.len()].fill(1.0);
            pad[r * len + s.len()..(r + 1) * len].fill(true);
        }
        let dev = &self.device;
        let x = self
            .word
            .clone()
            .select(0, ids(&flat, dev))
            .reshape([b, len, h])
            + self.pos.clone().slice(0..len).unsqueeze::<3>()
            + self.token_type0.clone().unsqueeze::<3>();
        let mut x = self.norm(x, &self.ln_emb);
        let any_pad = pad.iter().any(|&p| p);
        let mask = any_pad.then(|| {
            Tensor::<4, Bool>::from_data(TensorData::new(pad, [b, 1, 1, len]), dev)
                .expand([b, nh, len, len])
        });
        let split = |t: Tensor<3>| t.reshape([b, len, nh, h / nh]).swap_dims(1, 2);
        for l in &self.layers {
            let a = attention(
                split(l.q.fwd(x.clone())),
                split(l.k.fwd(x.clone())),
                split(l.v.fwd(x.clone())),
                mask.clone(),
                None,
                AttentionModuleOptions::default(),
            );
            let a = a.swap_dims(1, 2).reshape([b, len, h]);
            x = self.norm(l.o.fwd(a) + x, &l.ln_attn);
            let f = l.down.fwd(gelu(l.up.fwd(x.clone())));
            x = self.norm(f + x, &l.ln_out);
        }
        let keep = float(keep, [b, len, 1], dev);
        let count = keep.clone().sum_dim(1); // [b, 1, 1]
        let pooled = (x * keep).sum_dim(1) / count; // [b, 1, h]
        let norm = pooled
            .clone()
            .powf_scalar(2.0)
            .sum_dim(2)
            .sqrt()
            .clamp_min(1e-12);
        (pooled / norm).reshape([b, h])
    }

    /// Unit-length sentence embeddings, one per input (token ids with `[CLS]`/`[SEP]`, each at
    /// most `max_positions` long). Inputs are batched by length to limit padding and memory;
    /// the result is in input order.
    pub fn embed(&self, inputs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, FeatureError> {
        let h = self.cfg.hidden;
        if let Some(bad) = inputs
            .iter()
            .find(|i| i.is_empty() || i.len() > self.cfg.max_positions)
        {
            return Err(FeatureError::BadParameter {
                name: "input tokens",
                value: bad.len(),
                min: 1,
                max: self.cfg.max_positions,
            });
        }
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| inputs[i].len());
        let mut out = vec![Vec::new(); inputs.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted ascending: the batch's padded length is its last member's length.
            let mut end = start + 1;
            while end < order.len() && (end + 1 - start) * inputs[order[end]].len() <= BATCH_TOKENS
            {
                end += 1;
            }
            let batch: Vec<&[u32]> = order[start..end].iter().map(|&i| &inputs[i][..]).collect();
            let v = values(self.forward(&batch))?;
            for (j, &i) in order[start..end].iter().enumerate() {
                out[i] = v[j * h..(j + 1) * h].to_vec();
            }
            start = end;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{tiny_bert_config, tiny_bert_safetensors, tiny_bert_tokenizer_json};
    use crate::tokenize::MiniLmTokenizer;

    fn model() -> MiniLm {
        let cfg = tiny_bert_config();
        MiniLm::from_safetensors(&tiny_bert_safetensors(&cfg, 7), cfg, &Device::flex()).unwrap()
    }

    #[test]
    fn embeddings_are_unit_length_and_batch_independent() {
        let m = model();
        let tok = MiniLmTokenizer::from_json(&tiny_bert_tokenizer_json()).unwrap();
        let texts = [
            "hello there",
            "a much longer sentence with more words in it",
            "ok",
        ];
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| tok.encode(t, 64).unwrap().0).collect();
        let all = m.embed(&ids).unwrap();
        for (i, e) in all.iter().enumerate() {
            let n: f32 = e.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5, "norm {n}");
            // Alone (no padding) equals batched (with padding and mask).
            let one = m.embed(&ids[i..=i]).unwrap();
            for (a, b) in one[0].iter().zip(e) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
        }
        assert_ne!(all[0], all[1]);
    }

    #[test]
    fn shapes_are_checked() {
        let mut cfg = tiny_bert_config();
        let bytes = tiny_bert_safetensors(&cfg, 7);
        cfg.intermediate = 48;
        assert!(matches!(
            MiniLm::from_safetensors(&bytes, cfg, &Device::flex()),
            Err(LoadError::Shape { .. })
        ));
        cfg = tiny_bert_config();
        cfg.layers = 3;
        assert!(matches!(
            MiniLm::from_safetensors(&bytes, cfg, &Device::flex()),
            Err(LoadError::MissingTensor(_))
        ));
        assert!(matches!(
            MiniLm::from_safetensors(&bytes[..100], tiny_bert_config(), &Device::flex()),
            Err(LoadError::Safetensors(_))
        ));
    }
}
