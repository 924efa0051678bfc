//! Small helpers between `Vec<f32>` and Burn tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// A float tensor from row-major data.
pub(crate) fn float<const D: usize>(data: Vec<f32>, shape: [usize; D], dev: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(data, shape), dev)
}

/// A 1-d int tensor of token ids. The tensor's buffer is Burn's: freed by Burn, and wiped then
/// only by the enclave's allocator (`pp_workload::wipe`).
pub(crate) fn ids(ids: &[u32], dev: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), dev)
}

/// A tensor's values as f32.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, crate::FeatureError> {
    t.try_into_vec_as::<f32>()
        .map_err(|_| crate::FeatureError::Backend)
}

/// Transposes a row-major `rows × cols` matrix.
pub(crate) fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    out
}
