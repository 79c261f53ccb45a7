//! Quantized kiln model files: the int8 layers of a safetensors model file.
//!
//! A model a `quantize` job produced keeps kiln's safetensors layout; each int8
//! dense layer `i` stores, instead of its F32 `layers.{i}.weight`:
//! * `layers.{i}.weight`            I8  `[in, out]`, the codes `q`;
//! * `layers.{i}.weight_scale`      F32 `[1]` (per tensor) or `[out]` (per channel);
//! * `layers.{i}.weight_zero_point` I32, same shape (all 0 for symmetric weights);
//! * `layers.{i}.input_scale`, `layers.{i}.input_zero_point` F32 / I32 `[1]`:
//!   the u8 quantization of the layer's input (static mode only).
//!
//! The weight is `scale[j] · (q − zero_point[j])`, column `j`; biases stay F32,
//! as do layers kept in float. `__metadata__.dtype` is `int8` and
//! `__metadata__.quantization` is JSON: `{"mode": "static" | "dynamic", "scheme":
//! "symmetric" | "asymmetric", "granularity": "per_tensor" | "per_channel",
//! "int8_layers": [i, …]}`. In numpy: `w = scale * (q.astype(np.float32) - zp)`.

use std::collections::HashMap;

use ndarray::Array2;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::sparse_layout::RawTensor;
use kiln_nn::optimize::quant::qmodel::{LayerQuant, QuantConfig, QuantMode};
use kiln_nn::optimize::quant::scheme::{Granularity, QParams, QuantizedWeights, Scheme};
use kiln_nn::validation::Invalid;

/// The metadata key holding the quantization header.
pub const METADATA_KEY: &str = "quantization";

/// What makes a model int8: the configuration and each int8 layer's codes and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantization {
    pub config: QuantConfig,
    pub layers: Vec<LayerQuant>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    mode: QuantMode,
    scheme: Scheme,
    granularity: Granularity,
    int8_layers: Vec<usize>,
}

fn invalid(message: String) -> Invalid {
    Invalid::one("file", message)
}

fn f32_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

fn i32_bytes(values: impl Iterator<Item = i32>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

impl Quantization {
    pub fn layer(&self, index: usize) -> Option<&LayerQuant> {
        self.layers.iter().find(|l| l.layer == index)
    }

    /// The `__metadata__.quantization` value.
    pub fn header_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&Header {
            mode: self.config.mode,
            scheme: self.config.scheme,
            granularity: self.config.granularity,
            int8_layers: self.layers.iter().map(|l| l.layer).collect(),
        })
    }
}

/// The tensors standing for int8 layer `l` (its bias is written by the caller).
pub fn encode_layer(l: &LayerQuant) -> Vec<RawTensor> {
    let i = l.layer;
    let w = &l.weight;
    let mut out = vec![
        (
            format!("layers.{i}.weight"),
            Dtype::I8,
            vec![w.q.nrows(), w.q.ncols()],
            w.q.iter().map(|&q| q as u8).collect(),
        ),
        (
            format!("layers.{i}.weight_scale"),
            Dtype::F32,
            vec![w.params.len()],
            f32_bytes(w.params.iter().map(|p| p.scale)),
        ),
        (
            format!("layers.{i}.weight_zero_point"),
            Dtype::I32,
            vec![w.params.len()],
            i32_bytes(w.params.iter().map(|p| p.zero_point)),
        ),
    ];
    if let Some(p) = l.input {
        out.push((
            format!("layers.{i}.input_scale"),
            Dtype::F32,
            vec![1],
            f32_bytes(std::iter::once(p.scale)),
        ));
        out.push((
            format!("layers.{i}.input_zero_point"),
            Dtype::I32,
            vec![1],
            i32_bytes(std::iter::once(p.zero_point)),
        ));
    }
    out
}

fn words(bytes: &[u8]) -> impl Iterator<Item = [u8; 4]> + '_ {
    bytes.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]])
}

/// Parses the header; `None` when the file is not quantized.
pub fn header(
    metadata: &HashMap<String, String>,
) -> Result<Option<(QuantConfig, Vec<usize>)>, Invalid> {
    let Some(json) = metadata.get(METADATA_KEY) else {
        return Ok(None);
    };
    let h: Header = serde_json::from_str(json)
        .map_err(|e| invalid(format!("__metadata__.{METADATA_KEY} is not valid: {e}")))?;
    Ok(Some((
        QuantConfig {
            mode: h.mode,
            scheme: h.scheme,
            granularity: h.granularity,
        },
        h.int8_layers,
    )))
}

/// Reads int8 layer `i` (`[rows, cols]`), checking every tensor; the names it read
/// are pushed onto `expected`.
pub fn decode_layer(
    st: &SafeTensors<'_>,
    config: &QuantConfig,
    i: usize,
    rows: usize,
    cols: usize,
    expected: &mut Vec<String>,
) -> Result<LayerQuant, Invalid> {
    let name = |suffix: &str| format!("layers.{i}.{suffix}");
    let params = match config.granularity {
        Granularity::PerTensor => 1,
        Granularity::PerChannel => cols,
    };
    let q = super::tensor::exact(st, &name("weight"), Dtype::I8, &[rows, cols])?;
    let q = Array2::from_shape_vec((rows, cols), q.iter().map(|&b| b as i8).collect())
        .map_err(|e| invalid(format!("{}: {e}", name("weight"))))?;
    let scales: Vec<f32> = words(super::tensor::exact(
        st,
        &name("weight_scale"),
        Dtype::F32,
        &[params],
    )?)
    .map(f32::from_le_bytes)
    .collect();
    let zeros: Vec<i32> = words(super::tensor::exact(
        st,
        &name("weight_zero_point"),
        Dtype::I32,
        &[params],
    )?)
    .map(i32::from_le_bytes)
    .collect();
    expected.extend([
        name("weight"),
        name("weight_scale"),
        name("weight_zero_point"),
    ]);
    let check_scale = |s: f32, what: String| -> Result<(), Invalid> {
        if s.is_finite() && s > 0.0 {
            Ok(())
        } else {
            Err(invalid(format!(
                "{what} must be a finite positive scale; found {s}"
            )))
        }
    };
    let mut qparams = Vec::with_capacity(params);
    for (s, z) in scales.into_iter().zip(zeros) {
        check_scale(s, name("weight_scale"))?;
        if !(-128..=127).contains(&z) || (config.scheme == Scheme::Symmetric && z != 0) {
            return Err(invalid(format!(
                "{} holds {z}; an i8 zero point (0 for symmetric weights) is expected",
                name("weight_zero_point")
            )));
        }
        qparams.push(QParams {
            scale: s,
            zero_point: z,
        });
    }
    let input = match config.mode {
        QuantMode::Dynamic => None,
        QuantMode::Static => {
            let s = f32::from_le_bytes(
                words(super::tensor::exact(
                    st,
                    &name("input_scale"),
                    Dtype::F32,
                    &[1],
                )?)
                .next()
                .unwrap_or_default(),
            );
            let z = i32::from_le_bytes(
                words(super::tensor::exact(
                    st,
                    &name("input_zero_point"),
                    Dtype::I32,
                    &[1],
                )?)
                .next()
                .unwrap_or_default(),
            );
            check_scale(s, name("input_scale"))?;
            if !(0..=255).contains(&z) {
                return Err(invalid(format!(
                    "{} holds {z}; a u8 zero point is expected",
                    name("input_zero_point")
                )));
            }
            expected.extend([name("input_scale"), name("input_zero_point")]);
            Some(QParams {
                scale: s,
                zero_point: z,
            })
        }
    };
    Ok(LayerQuant {
        layer: i,
        weight: QuantizedWeights { q, params: qparams },
        input,
    })
}
