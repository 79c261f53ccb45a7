//! [`QuantizedModel`]: a [`Sequential`] whose dense layers run as u8 × i8 → i32
//! products, except layers kept in float.
//!
//! Static mode fixes every int8 layer's input [`QParams`] from calibration data,
//! so two consecutive int8 layers hand each other u8 codes directly: the i32
//! accumulator is rescaled by a fixed-point [`Multiplier`] (ReLU fused as a
//! clamp at the zero point) and never becomes a float. Dynamic mode measures
//! each layer's input range per batch instead, and works in float between
//! layers. [`QuantizedModel::simulate`] redoes the same integer arithmetic
//! without the kernels, as the reference the kernels are tested against.
//!
//! Zero points are folded out of the product (`Σ(a − za)(w − zw) = Σaw −
//! za·colsum(W) − zw·rowsum(A) + k·za·zw`), so the kernel multiplies raw codes.
//! Accumulators use wrapping i32 arithmetic like the kernels: the corrected sum
//! is exact whenever it fits in i32, whatever the intermediate terms do.

use std::cell::RefCell;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

use super::calibrate::{CalibrationMethod, Observer};
use super::kernel::{PackedWeights, gemm_u8i8};
use super::scheme::{
    Granularity, Multiplier, QParams, QuantizedWeights, Scheme, multiplier, quantize_weights,
};
use crate::layers::Layer;
use crate::layers::UnsupportedLayer;
use crate::layers::activation::{self, Activation};
use crate::layers::dense::Dense;
use crate::layers::param::Param;
use crate::model::Sequential;
use codes::{Rescales, RowRequant, quantize_row, requantize_row, row_sum};

#[path = "qmodel_codes.rs"]
mod codes;
#[path = "qmodel_simulate.rs"]
mod simulate;

#[cfg(test)]
#[path = "qmodel_tests.rs"]
mod tests;

/// Whether activation ranges are fixed from calibration data or measured per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantMode {
    /// Each int8 layer quantizes its float input with the range of the batch at hand.
    Dynamic,
    /// Input ranges come from calibration; int8 layers chain in integer arithmetic.
    Static,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantConfig {
    pub mode: QuantMode,
    /// Of the weights. Activations are always asymmetric u8: after a ReLU a symmetric range
    /// would leave half the codes unused.
    pub scheme: Scheme,
    pub granularity: Granularity,
}

/// What a file stores per int8 layer (the rest is the float Sequential): weights as i8 with
/// their params, and for static mode the layer's input QParams.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerQuant {
    /// Index into `architecture.layers`.
    pub layer: usize,
    pub weight: QuantizedWeights,
    pub input: Option<QParams>,
}

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error(transparent)]
    Unsupported(#[from] UnsupportedLayer),
    #[error("static quantization needs calibration data")]
    NoCalibration,
    #[error("calibration data has {got} features; the model expects {expected}")]
    CalibrationWidth { got: usize, expected: usize },
    #[error("calibration data has no rows")]
    CalibrationEmpty,
    #[error("layer {0} is not a dense layer of the model")]
    NotDense(usize),
    #[error("layer {0} is listed twice")]
    Duplicate(usize),
    #[error("layers.{layer}: quantized weights have shape {got:?}; the model's are {expected:?}")]
    Shape {
        layer: usize,
        got: (usize, usize),
        expected: (usize, usize),
    },
    #[error("layers.{layer}: {got} weight quantization parameters for {units} units")]
    ParamCount {
        layer: usize,
        got: usize,
        units: usize,
    },
    #[error("layers.{0}: static quantization needs the layer's input parameters")]
    MissingInput(usize),
    #[error(
        "layers.{layer}: scale {scale} and zero point {zero_point} are not valid {kind} parameters"
    )]
    BadParams {
        layer: usize,
        kind: &'static str,
        scale: f32,
        zero_point: i32,
    },
}

/// A network running its dense layers in int8 (see the module doc). `Send + Sync`: the
/// per-call buffers live in thread-local scratch, not in the model.
#[derive(Debug)]
pub struct QuantizedModel {
    config: QuantConfig,
    /// The float network with int8 layers' weights replaced by what their codes stand for;
    /// float layers run from here.
    base: Sequential,
    layers: Vec<LayerQuant>,
    /// One per dense layer (trailing dropouts dropped), in order.
    stages: Vec<Stage>,
}

#[derive(Debug)]
enum Stage {
    /// Index of a dense layer of `base`, run in f32.
    Float(usize),
    Int8(Box<Int8Layer>),
}

/// An int8 layer ready to run: packed codes and everything the epilogue needs per column.
#[derive(Debug)]
struct Int8Layer {
    /// Index into `layers` (and `architecture.layers` through it).
    quant: usize,
    k: usize,
    n: usize,
    activation: Activation,
    packed: PackedWeights,
    w_scale: Vec<f32>,
    w_zero: Vec<i32>,
    /// Some weight zero point is not 0, so rows of A need their sums.
    asymmetric: bool,
    /// Float bias (dynamic mode adds it after dequantizing).
    bias: Option<Vec<f32>>,
    /// Static mode only.
    fixed: Option<Fixed>,
}

/// What static mode precomputes, the input [`QParams`] being known.
#[derive(Debug)]
struct Fixed {
    input: QParams,
    /// `bias_q[j] − za·colsum[j] + k·za·zw[j]`: everything but `Σaw − zw[j]·rowsum(A)`.
    offset: Vec<i32>,
    /// `s_a · s_w[j]`: one accumulator unit in float.
    out_scale: Vec<f32>,
    /// Present when the next layer is int8 and the activation can be applied on codes.
    requant: Option<Requant>,
}

/// Rescaling straight to the next layer's u8 codes.
#[derive(Debug)]
struct Requant {
    multipliers: Vec<Multiplier>,
    /// The same, unpacked for the hot loop (`None` if some factor is too large to unpack).
    rescale: Option<Rescales>,
    zero_point: i32,
    /// The smallest code written: the zero point for ReLU (the fused clamp), else 0.
    floor: i32,
}

impl QuantizedModel {
    /// Quantizes `model`'s dense layers except `float_layers`; Static needs calibration ranges:
    /// `calibration` rows are run through the float model to observe each int8 layer's input
    /// (Observer + method).
    pub fn build(
        model: &Sequential,
        cfg: &QuantConfig,
        float_layers: &[usize],
        calibration: Option<(ArrayView2<f32>, CalibrationMethod)>,
    ) -> Result<Self, QuantError> {
        if let Some(&l) = float_layers
            .iter()
            .find(|&&l| model.layers().get(l).and_then(Layer::as_dense).is_none())
        {
            return Err(QuantError::NotDense(l));
        }
        let int8: Vec<usize> = model
            .dense_only("int8 quantization")?
            .into_iter()
            .map(|(i, _)| i)
            .filter(|i| !float_layers.contains(i))
            .collect();
        let inputs = match cfg.mode {
            QuantMode::Dynamic => vec![None; int8.len()],
            QuantMode::Static if int8.is_empty() => Vec::new(),
            QuantMode::Static => {
                let (x, method) = calibration.ok_or(QuantError::NoCalibration)?;
                calibrate(model, &int8, x, method)?
                    .into_iter()
                    .map(Some)
                    .collect()
            }
        };
        let layers = int8
            .iter()
            .zip(inputs)
            .filter_map(|(&layer, input)| {
                let d = model.layers().get(layer).and_then(Layer::as_dense)?;
                Some(LayerQuant {
                    layer,
                    weight: quantize_weights(d.weight.matrix().view(), cfg.scheme, cfg.granularity),
                    input,
                })
            })
            .collect();
        Self::from_parts(model, cfg, layers)
    }

    /// Rebuilds from stored parts (model files): `model` holds the float layers (and biases of
    /// all layers); the weights it holds for quantized layers are ignored.
    pub fn from_parts(
        model: &Sequential,
        cfg: &QuantConfig,
        mut layers: Vec<LayerQuant>,
    ) -> Result<Self, QuantError> {
        layers.sort_by_key(|l| l.layer);
        let mut base = model.clone();
        for (i, lq) in layers.iter().enumerate() {
            if i > 0 && layers[i - 1].layer == lq.layer {
                return Err(QuantError::Duplicate(lq.layer));
            }
            check_layer(model, cfg, lq)?;
            if let Some(d) = base
                .layers_mut()
                .get_mut(lq.layer)
                .and_then(Layer::as_dense_mut)
            {
                d.weight = Param::new(lq.weight.dequantize());
            }
        }
        let dense: Vec<usize> = model
            .dense_only("int8 quantization")?
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let mut stages = Vec::with_capacity(dense.len());
        for (pos, &layer) in dense.iter().enumerate() {
            let Ok(q) = layers.binary_search_by_key(&layer, |l| l.layer) else {
                stages.push(Stage::Float(layer));
                continue;
            };
            let Some(d) = model.layers().get(layer).and_then(Layer::as_dense) else {
                return Err(QuantError::NotDense(layer));
            };
            // The next layer's input params, when it is int8 too (static mode).
            let next_input = dense
                .get(pos + 1)
                .and_then(|next| layers.binary_search_by_key(next, |l| l.layer).ok())
                .and_then(|nq| layers[nq].input);
            stages.push(Stage::Int8(Box::new(Int8Layer::new(
                q, &layers[q], d, cfg.mode, next_input,
            ))));
        }
        Ok(Self {
            config: cfg.clone(),
            base,
            layers,
            stages,
        })
    }

    pub fn config(&self) -> &QuantConfig {
        &self.config
    }

    /// The int8 layers, by ascending layer index (for writing files / reports).
    pub fn layers(&self) -> &[LayerQuant] {
        &self.layers
    }

    pub fn input_dim(&self) -> usize {
        self.base.input_dim()
    }

    pub fn output_dim(&self) -> usize {
        self.base.output_dim()
    }

    /// The float model with int8-grid weights (for size/param reports).
    pub fn dequantized(&self) -> Sequential {
        self.base.clone()
    }

    /// Same semantics as [`Sequential::predict`].
    ///
    /// # Panics
    /// If `x` does not have `input_dim` columns; check with [`Sequential::check_input`].
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(x.ncols(), self.input_dim(), "input width");
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => {
                let out = self.run(x, &mut s);
                s.trim();
                out
            }
            Err(_) => self.run(x, &mut Scratch::default()),
        })
    }

    /// The same integer arithmetic simulated in f64/f32 (no kernels): the reference the tests
    /// compare against.
    ///
    /// # Panics
    /// If `x` does not have `input_dim` columns.
    pub fn simulate(&self, x: ArrayView2<f32>) -> Array2<f32> {
        simulate::simulate(self, x)
    }

    /// Per int8 layer, the mean squared difference between its float output and its int8
    /// output (dequantized, activation applied) on the float model's inputs to it over `x`,
    /// largest first: the first is the layer to keep in float when accuracy drops too much.
    /// Layers whose shape in `model` differs from this model's are left out. `x` is run in
    /// chunks of [`CHUNK_ROWS`] rows (dynamic ranges are per chunk), bounding memory.
    ///
    /// # Panics
    /// If `x` does not have `input_dim` columns.
    pub fn per_layer_error(&self, model: &Sequential, x: ArrayView2<f32>) -> Vec<(usize, f64)> {
        assert_eq!(x.ncols(), model.input_dim(), "input width");
        let mut scratch = Scratch::default();
        // (layer, Σ squared difference, values compared)
        let mut sums: Vec<(usize, f64, usize)> = Vec::new();
        for chunk in x.axis_chunks_iter(Axis(0), CHUNK_ROWS) {
            let mut h: Option<Array2<f32>> = None;
            for (layer, d) in model.dense_layers() {
                let input = h.as_ref().map_or(chunk, |h| h.view());
                let y = d.forward(input);
                if let Some(q) = self.int8_layer(layer)
                    && (q.k, q.n) == d.weight.matrix().dim()
                {
                    let mut z = Array2::zeros((input.nrows(), q.n));
                    q.run_to_float(input, &mut scratch, z.view_mut());
                    let sq: f64 = z
                        .iter()
                        .zip(&y)
                        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                        .sum();
                    match sums.iter_mut().find(|s| s.0 == layer) {
                        Some(s) => {
                            s.1 += sq;
                            s.2 += z.len();
                        }
                        None => sums.push((layer, sq, z.len())),
                    }
                }
                h = Some(y);
            }
        }
        let mut out: Vec<(usize, f64)> = sums
            .into_iter()
            .map(|(layer, sq, n)| (layer, if n == 0 { 0.0 } else { sq / n as f64 }))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }

    fn int8_layer(&self, layer: usize) -> Option<&Int8Layer> {
        self.stages.iter().find_map(|s| match s {
            Stage::Int8(q) if self.layers[q.quant].layer == layer => Some(&**q),
            _ => None,
        })
    }

    /// The forward pass over buffers from `s`: activations travel as f32 or, between fused
    /// static int8 layers, as u8 codes.
    fn run(&self, x: ArrayView2<f32>, s: &mut Scratch) -> Array2<f32> {
        let m = x.nrows();
        let mut state = State::Input;
        let mut width = x.ncols();
        // Dynamic mode's per-batch params of the current layer's input.
        let mut params = QParams {
            scale: 1.0,
            zero_point: 0,
        };
        let mut i = 0;
        while i < self.stages.len() {
            let stage = &self.stages[i];
            i += 1;
            match stage {
                Stage::Int8(q) if q.fixed.is_some() && state != State::U8 => {
                    // A static segment: this layer and the int8 layers it hands codes to.
                    let end = fixed_segment_end(&self.stages, i - 1);
                    let segment = &self.stages[i - 1..end];
                    i = end;
                    let n = segment.last().map_or(width, |st| match st {
                        Stage::Int8(l) => l.n,
                        Stage::Float(_) => width,
                    });
                    let mut dst = take_f32(&mut s.f_next, m * n);
                    {
                        let src = float_view(state, x, &s.f_cur, m, width);
                        let bufs = SegmentBuffers {
                            q_cur: &mut s.q_cur,
                            q_next: &mut s.q_next,
                            acc: &mut s.acc,
                            cols: &mut s.cols,
                        };
                        run_fixed_segment(segment, src, bufs, &mut dst);
                    }
                    s.f_next = std::mem::replace(&mut s.f_cur, dst);
                    state = State::F32;
                    width = n;
                }
                Stage::Float(layer) => {
                    let Some(d) = self.base.layers().get(*layer).and_then(Layer::as_dense) else {
                        continue;
                    };
                    let n = d.units();
                    let mut dst = take_f32(&mut s.f_next, m * n);
                    {
                        let src = float_view(state, x, &s.f_cur, m, width);
                        let mut z = view_mut(&mut dst, m, n);
                        d.linear_into(src, z.view_mut());
                        activation::apply_inplace(d.activation, z);
                    }
                    s.f_next = std::mem::replace(&mut s.f_cur, dst);
                    state = State::F32;
                    width = n;
                }
                Stage::Int8(q) => {
                    if state != State::U8 {
                        let src = float_view(state, x, &s.f_cur, m, width);
                        params = q.quantize_input(src, &mut s.q_cur);
                    }
                    grow(&mut s.acc, m * q.n);
                    gemm_u8i8(&s.q_cur[..m * q.k], m, &q.packed, &mut s.acc[..m * q.n]);
                    match q
                        .fixed
                        .as_ref()
                        .and_then(|f| f.requant.as_ref().map(|r| (f, r)))
                    {
                        Some((f, r)) => {
                            grow(&mut s.q_next, m * q.n);
                            q.requantize(
                                f,
                                r,
                                &s.q_cur[..m * q.k],
                                &s.acc[..m * q.n],
                                &mut s.q_next[..m * q.n],
                            );
                            std::mem::swap(&mut s.q_cur, &mut s.q_next);
                            state = State::U8;
                        }
                        None => {
                            let mut dst = take_f32(&mut s.f_next, m * q.n);
                            q.dequantize(
                                &s.q_cur[..m * q.k],
                                &s.acc[..m * q.n],
                                params,
                                &mut dst,
                                &mut s.cols,
                            );
                            activation::apply_inplace(q.activation, view_mut(&mut dst, m, q.n));
                            s.f_next = std::mem::replace(&mut s.f_cur, dst);
                            state = State::F32;
                        }
                    }
                    width = q.n;
                }
            }
        }
        match state {
            State::Input => x.to_owned(),
            // Only a fused layer writes codes, and the last layer never fuses.
            State::F32 | State::U8 => {
                Array2::from_shape_vec((m, width), s.f_cur[..m * width].to_vec())
                    .unwrap_or_else(|_| Array2::zeros((m, width)))
            }
        }
    }
}

/// Rows a static segment runs at a time: every layer's codes and accumulators for a block
/// stay in L2 between the product and its epilogue, instead of a whole batch's i32
/// accumulators (1.2 MB for 1024 × 300) going out to L3 and back, and the scratch stays
/// small. (On Zen 4 with LeNet-300-100 it measured within noise of whole-batch passes; 48 to
/// 192 rows all alike.) A multiple of the kernels' 6-row micro-tile.
const BLOCK_ROWS: usize = 96;

/// The end (exclusive) of the static segment starting at `start`: it runs on while a layer
/// hands its codes to the next (fused requantization).
fn fixed_segment_end(stages: &[Stage], start: usize) -> usize {
    let mut end = start + 1;
    while let (Some(Stage::Int8(cur)), Some(Stage::Int8(next))) =
        (stages.get(end - 1), stages.get(end))
    {
        let fused = cur.fixed.as_ref().is_some_and(|f| f.requant.is_some());
        if !fused || next.fixed.is_none() {
            break;
        }
        end += 1;
    }
    end
}

/// The scratch a static segment works in.
struct SegmentBuffers<'a> {
    q_cur: &'a mut Vec<u8>,
    q_next: &'a mut Vec<u8>,
    acc: &'a mut Vec<i32>,
    cols: &'a mut Vec<Column>,
}

/// A segment of static int8 layers (see [`fixed_segment_end`]) from float input `x` to the
/// last layer's float output (activation applied) in `out`, [`BLOCK_ROWS`] rows at a time.
/// Every step is row by row with fixed params, so blocks give the same values as one pass.
fn run_fixed_segment(
    segment: &[Stage],
    x: ArrayView2<f32>,
    b: SegmentBuffers<'_>,
    out: &mut [f32],
) {
    let layers: Vec<&Int8Layer> = segment
        .iter()
        .filter_map(|st| match st {
            Stage::Int8(q) => Some(&**q),
            Stage::Float(_) => None,
        })
        .collect();
    let (Some(first), Some(last)) = (layers.first(), layers.last()) else {
        return;
    };
    let n_out = last.n;
    for (block, xb) in x.axis_chunks_iter(Axis(0), BLOCK_ROWS).enumerate() {
        let rows = xb.nrows();
        let mut params = first.quantize_input(xb, b.q_cur);
        for (pos, q) in layers.iter().enumerate() {
            grow(b.acc, rows * q.n);
            gemm_u8i8(
                &b.q_cur[..rows * q.k],
                rows,
                &q.packed,
                &mut b.acc[..rows * q.n],
            );
            let requant = q
                .fixed
                .as_ref()
                .and_then(|f| f.requant.as_ref().map(|r| (f, r)));
            match requant {
                Some((f, r)) if pos + 1 < layers.len() => {
                    grow(b.q_next, rows * q.n);
                    q.requantize(
                        f,
                        r,
                        &b.q_cur[..rows * q.k],
                        &b.acc[..rows * q.n],
                        &mut b.q_next[..rows * q.n],
                    );
                    std::mem::swap(b.q_cur, b.q_next);
                    if let Some(nf) = layers.get(pos + 1).and_then(|l| l.fixed.as_ref()) {
                        params = nf.input;
                    }
                }
                _ => {
                    let start = block * BLOCK_ROWS * n_out;
                    let Some(dst) = out.get_mut(start..start + rows * n_out) else {
                        return;
                    };
                    q.dequantize(
                        &b.q_cur[..rows * q.k],
                        &b.acc[..rows * q.n],
                        params,
                        dst,
                        b.cols,
                    );
                    activation::apply_inplace(q.activation, view_mut(dst, rows, n_out));
                }
            }
        }
    }
}

impl Int8Layer {
    fn new(
        quant: usize,
        lq: &LayerQuant,
        d: &Dense,
        mode: QuantMode,
        next_input: Option<QParams>,
    ) -> Self {
        let (k, n) = lq.weight.q.dim();
        let params: Vec<QParams> = (0..n).map(|j| lq.weight.params_for(j)).collect();
        let w_scale: Vec<f32> = params.iter().map(|p| p.scale).collect();
        let w_zero: Vec<i32> = params.iter().map(|p| p.zero_point).collect();
        let packed = PackedWeights::pack(lq.weight.q.view());
        let bias = d
            .bias
            .as_ref()
            .map(|b| b.matrix().iter().copied().collect::<Vec<f32>>());
        let fixed = match (mode, lq.input) {
            (QuantMode::Static, Some(input)) => {
                let za = input.zero_point;
                let out_scale: Vec<f32> = w_scale
                    .iter()
                    .map(|&sw| out_scale(input.scale, sw))
                    .collect();
                let offset = (0..n)
                    .map(|j| {
                        let bq = bias
                            .as_ref()
                            .map_or(0, |b| quantize_bias(b[j], out_scale[j]));
                        let corr = i64::from(za)
                            * (k as i64 * i64::from(w_zero[j]) - i64::from(packed.col_sums()[j]));
                        // Wrapping, like the accumulator it is added to.
                        (i64::from(bq) + corr) as i32
                    })
                    .collect();
                let requant = next_input
                    .filter(|_| matches!(d.activation, Activation::Relu | Activation::Linear))
                    .map(|next| {
                        let multipliers: Vec<Multiplier> = out_scale_f64(input.scale, &w_scale)
                            .map(|s| multiplier(s / f64::from(next.scale)))
                            .collect();
                        Requant {
                            rescale: Rescales::new(&multipliers),
                            multipliers,
                            zero_point: next.zero_point,
                            floor: if d.activation == Activation::Relu {
                                next.zero_point
                            } else {
                                0
                            },
                        }
                    });
                Some(Fixed {
                    input,
                    offset,
                    out_scale,
                    requant,
                })
            }
            _ => None,
        };
        Self {
            quant,
            k,
            n,
            activation: d.activation,
            packed,
            asymmetric: w_zero.iter().any(|&z| z != 0),
            w_scale,
            w_zero,
            bias,
            fixed,
        }
    }

    /// Codes of `x` into `q`, with the fixed input params or (dynamic) the batch's range;
    /// returns the params used.
    fn quantize_input(&self, x: ArrayView2<f32>, q: &mut Vec<u8>) -> QParams {
        let p = match &self.fixed {
            Some(f) => f.input,
            None => dynamic_params(x),
        };
        grow(q, x.len());
        if let Some(src) = x.as_slice() {
            quantize_row(src, q, p);
            return p;
        }
        let width = x.ncols().max(1);
        for (row, dst) in x.rows().into_iter().zip(q.chunks_exact_mut(width)) {
            match row.as_slice() {
                Some(src) => quantize_row(src, dst, p),
                None => dst
                    .iter_mut()
                    .zip(row)
                    .for_each(|(d, &v)| *d = codes::quantize_u8(v, p)),
            }
        }
        p
    }

    /// Fused epilogue: accumulators to the next layer's codes.
    fn requantize(&self, f: &Fixed, r: &Requant, a: &[u8], acc: &[i32], out: &mut [u8]) {
        for ((a_row, acc_row), out_row) in a
            .chunks_exact(self.k.max(1))
            .zip(acc.chunks_exact(self.n.max(1)))
            .zip(out.chunks_exact_mut(self.n.max(1)))
        {
            let rs = if self.asymmetric { row_sum(a_row) } else { 0 };
            let (zero_point, floor) = (i64::from(r.zero_point), i64::from(r.floor));
            match &r.rescale {
                Some(rescales) => {
                    let row = RowRequant {
                        offset: &f.offset,
                        w_zero: &self.w_zero,
                        rs,
                        rescales,
                        zero_point,
                        floor,
                    };
                    requantize_row(acc_row, &row, out_row);
                }
                None => {
                    let cols = out_row
                        .iter_mut()
                        .zip(acc_row)
                        .zip(&f.offset)
                        .zip(&self.w_zero)
                        .zip(&r.multipliers);
                    for ((((o, &acc), &off), &zw), m) in cols {
                        let v = acc.wrapping_add(off).wrapping_sub(zw.wrapping_mul(rs));
                        let code = i64::from(m.apply(v)).saturating_add(zero_point);
                        *o = code.clamp(floor, 255) as u8;
                    }
                }
            }
        }
    }

    /// Float epilogue (before the activation): accumulators to `s_a·s_w[j]·acc (+ b[j])`.
    /// `cols` is scratch for dynamic mode's per-call column constants.
    fn dequantize(
        &self,
        a: &[u8],
        acc: &[i32],
        dynamic: QParams,
        out: &mut [f32],
        cols: &mut Vec<Column>,
    ) {
        let rows = a
            .chunks_exact(self.k.max(1))
            .zip(acc.chunks_exact(self.n.max(1)))
            .zip(out.chunks_exact_mut(self.n.max(1)));
        cols.clear();
        match &self.fixed {
            Some(f) => {
                cols.extend(
                    f.offset
                        .iter()
                        .zip(&f.out_scale)
                        .map(|(&offset, &scale)| Column {
                            scale,
                            offset,
                            bias: 0.0,
                        }),
                )
            }
            None => {
                let za = dynamic.zero_point;
                let kz = (self.k as i32).wrapping_mul(za);
                cols.extend((0..self.n).map(|j| {
                    Column {
                        scale: out_scale(dynamic.scale, self.w_scale[j]),
                        offset: kz
                            .wrapping_mul(self.w_zero[j])
                            .wrapping_sub(za.wrapping_mul(self.packed.col_sums()[j])),
                        bias: self.bias.as_ref().map_or(0.0, |b| b[j]),
                    }
                }));
            }
        }
        for ((a_row, acc_row), out_row) in rows {
            let rs = if self.asymmetric { row_sum(a_row) } else { 0 };
            for (((o, &acc), c), &zw) in out_row
                .iter_mut()
                .zip(acc_row)
                .zip(&*cols)
                .zip(&self.w_zero)
            {
                let v = acc.wrapping_add(c.offset).wrapping_sub(zw.wrapping_mul(rs));
                *o = v as f32 * c.scale + c.bias;
            }
        }
    }

    /// This layer alone from float input to float output (activation applied), never fused.
    fn run_to_float(&self, x: ArrayView2<f32>, s: &mut Scratch, mut out: ArrayViewMut2<f32>) {
        let m = x.nrows();
        let params = self.quantize_input(x, &mut s.q_cur);
        grow(&mut s.acc, m * self.n);
        gemm_u8i8(
            &s.q_cur[..m * self.k],
            m,
            &self.packed,
            &mut s.acc[..m * self.n],
        );
        let mut buf = vec![0.0; m * self.n];
        self.dequantize(
            &s.q_cur[..m * self.k],
            &s.acc[..m * self.n],
            params,
            &mut buf,
            &mut s.cols,
        );
        let mut z = view_mut(&mut buf, m, self.n);
        activation::apply_inplace(self.activation, z.view_mut());
        out.assign(&z);
    }
}

/// `s_a · s_w` in f32, rounded once from the exact f64 product.
fn out_scale(sa: f32, sw: f32) -> f32 {
    (f64::from(sa) * f64::from(sw)) as f32
}

fn out_scale_f64(sa: f32, sw: &[f32]) -> impl Iterator<Item = f64> + '_ {
    sw.iter().map(move |&s| f64::from(sa) * f64::from(s))
}

/// The bias in accumulator units (`b / (s_a·s_w)`), rounded half to even and saturated.
fn quantize_bias(b: f32, unit: f32) -> i32 {
    let q = (f64::from(b) / f64::from(unit)).round_ties_even();
    if q.is_nan() {
        0
    } else {
        q.clamp(i32::MIN as f64, i32::MAX as f64) as i32
    }
}

/// Dynamic input params: asymmetric over the batch's finite `[min, max]`.
fn dynamic_params(x: ArrayView2<f32>) -> QParams {
    let (lo, hi) = match x.as_slice() {
        Some(all) => codes::finite_range(all),
        None => x
            .rows()
            .into_iter()
            .fold((0.0f32, 0.0f32), |(lo, hi), row| {
                let (l, h) = match row.as_slice() {
                    Some(r) => codes::finite_range(r),
                    None => codes::finite_range(&row.to_vec()),
                };
                (lo.min(l), hi.max(h))
            }),
    };
    QParams::activation(lo, hi, Scheme::Asymmetric)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Activations are still the caller's `x`.
    Input,
    /// In `Scratch::f_cur`.
    F32,
    /// In `Scratch::q_cur`.
    U8,
}

/// Per-thread buffers for [`QuantizedModel::predict`], grown to the largest batch seen (and
/// released past [`SCRATCH_KEEP`]), so a call allocates only its output.
#[derive(Debug, Default)]
struct Scratch {
    cols: Vec<Column>,
    f_cur: Vec<f32>,
    f_next: Vec<f32>,
    q_cur: Vec<u8>,
    q_next: Vec<u8>,
    acc: Vec<i32>,
}

/// One output column's epilogue constants: `out = (acc + offset − zw·rowsum)·scale + bias`.
#[derive(Debug, Clone, Copy)]
struct Column {
    scale: f32,
    offset: i32,
    bias: f32,
}

/// Bytes of scratch a thread keeps between calls; a huge batch does not pin its buffers.
const SCRATCH_KEEP: usize = 8 << 20;

impl Scratch {
    fn trim(&mut self) {
        let bytes = 4 * (self.f_cur.capacity() + self.f_next.capacity() + self.acc.capacity())
            + self.q_cur.capacity()
            + self.q_next.capacity();
        if bytes > SCRATCH_KEEP {
            *self = Scratch::default();
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// `v` made at least `len` long. Never shrinks: the layers of a block alternate between sizes,
/// and shrinking then growing again would zero-fill the regrown part every time (callers slice
/// what they use).
fn grow<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}

/// `buf` resized to `len` (contents unspecified), taken out of its slot.
fn take_f32(slot: &mut Vec<f32>, len: usize) -> Vec<f32> {
    let mut v = std::mem::take(slot);
    v.resize(len, 0.0);
    v
}

/// The current float activations: the caller's input or the scratch buffer.
fn float_view<'a>(
    state: State,
    x: ArrayView2<'a, f32>,
    buf: &'a [f32],
    m: usize,
    width: usize,
) -> ArrayView2<'a, f32> {
    match state {
        State::Input => x,
        State::F32 | State::U8 => view(&buf[..m * width], m, width),
    }
}

fn view(buf: &[f32], m: usize, n: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((m, n), buf).expect("a buffer of m·n values")
}

fn view_mut(buf: &mut [f32], m: usize, n: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((m, n), &mut buf[..m * n]).expect("a buffer of m·n values")
}

/// Each int8 layer's input params from the float model's activations over `x`.
fn calibrate(
    model: &Sequential,
    int8: &[usize],
    x: ArrayView2<f32>,
    method: CalibrationMethod,
) -> Result<Vec<QParams>, QuantError> {
    if x.ncols() != model.input_dim() {
        return Err(QuantError::CalibrationWidth {
            got: x.ncols(),
            expected: model.input_dim(),
        });
    }
    if x.nrows() == 0 {
        return Err(QuantError::CalibrationEmpty);
    }
    let mut observers: Vec<Observer> = int8.iter().map(|_| Observer::new()).collect();
    for chunk in x.axis_chunks_iter(Axis(0), CHUNK_ROWS) {
        let mut h: Option<Array2<f32>> = None;
        for (i, layer) in model.layers().iter().enumerate() {
            let Layer::Dense(d) = layer else { continue };
            let input = h.as_ref().map_or(chunk, |h| h.view());
            if let Some(pos) = int8.iter().position(|&l| l == i) {
                observers[pos].observe(input);
            }
            if int8.last().is_some_and(|&last| i >= last) {
                break;
            }
            h = Some(d.forward(input));
        }
    }
    Ok(observers
        .iter()
        .map(|o| {
            let (lo, hi) = o.range(method, Scheme::Asymmetric);
            QParams::activation(lo, hi, Scheme::Asymmetric)
        })
        .collect())
}

/// Rows run through the float model at a time while calibrating or measuring errors, bounding
/// the memory of a large data set's activations.
pub const CHUNK_ROWS: usize = 1024;

/// Shapes and parameters of one stored layer against `model`.
fn check_layer(model: &Sequential, cfg: &QuantConfig, lq: &LayerQuant) -> Result<(), QuantError> {
    let layer = lq.layer;
    let d = model
        .layers()
        .get(layer)
        .and_then(Layer::as_dense)
        .ok_or(QuantError::NotDense(layer))?;
    if lq.weight.q.dim() != d.weight.matrix().dim() {
        return Err(QuantError::Shape {
            layer,
            got: lq.weight.q.dim(),
            expected: d.weight.matrix().dim(),
        });
    }
    let units = d.units();
    let count = lq.weight.params.len();
    if count != 1 && count != units {
        return Err(QuantError::ParamCount {
            layer,
            got: count,
            units,
        });
    }
    let valid = |p: &QParams, lo: i32, hi: i32| {
        p.scale.is_finite() && p.scale > 0.0 && (lo..=hi).contains(&p.zero_point)
    };
    if let Some(p) = lq.weight.params.iter().find(|p| !valid(p, -128, 127)) {
        return Err(QuantError::BadParams {
            layer,
            kind: "weight",
            scale: p.scale,
            zero_point: p.zero_point,
        });
    }
    match (cfg.mode, lq.input) {
        (QuantMode::Static, None) => Err(QuantError::MissingInput(layer)),
        (_, Some(p)) if !valid(&p, 0, 255) => Err(QuantError::BadParams {
            layer,
            kind: "input",
            scale: p.scale,
            zero_point: p.zero_point,
        }),
        _ => Ok(()),
    }
}

impl crate::predictor::Predictor for QuantizedModel {
    fn input_dim(&self) -> usize {
        QuantizedModel::input_dim(self)
    }

    fn output_dim(&self) -> usize {
        QuantizedModel::output_dim(self)
    }

    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        QuantizedModel::predict(self, x)
    }
}
