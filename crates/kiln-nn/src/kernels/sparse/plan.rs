//! [`InferenceModel`]: a network compiled for inference, each dense layer
//! running the kernel that measured faster for its batch regime.

use std::time::Duration;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, s};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::csr::Csr;
use super::measure::race;
use crate::layers::Layer;
use crate::layers::activation::{self, Activation};
use crate::layers::dense::Dense;
use crate::layers::param::Param;
use crate::model::Sequential;

/// Batches up to this many rows count as single-row inference (latency);
/// larger ones as batched (throughput).
const BATCH1_MAX: usize = 4;
/// Rows of the batched measurement: enough for the GEMM to amortise packing
/// its operands, few enough to time a LeNet layer in a couple of milliseconds.
const MEASURE_ROWS: usize = 64;
/// Above this density a layer is clearly dense and is not measured.
const MEASURE_MAX_DENSITY: f64 = 0.5;
/// Time allowed per layer and regime (at least three samples of each kernel run regardless).
const MEASURE_BUDGET: Duration = Duration::from_millis(2);
const MEASURE_SEED: u64 = 0x5eed;

/// The product a dense layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// [`Dense::linear_into`]: row AXPYs for a few rows, a GEMM beyond.
    Dense,
    /// [`Csr::linear_into`] over the stored non-zeros.
    Csr,
}

impl Kernel {
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Dense => "dense",
            Kernel::Csr => "csr",
        }
    }
}

/// How [`compile_with`] picks kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Every layer dense.
    Dense,
    /// Every layer CSR, whatever its density.
    Sparse,
    /// Per layer and batch regime, the faster on this machine (what [`compile`] does).
    Measure,
}

/// Which kernel a layer runs, for a job to report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerKernel {
    /// Index into `architecture.layers`.
    pub layer: usize,
    /// Non-zero weights over all weights.
    pub density: f64,
    /// Kernel for batches of at most 4 rows.
    pub batch1: &'static str,
    /// Kernel for larger batches.
    pub batched: &'static str,
}

/// One dense layer: the weights in whichever forms its kernels need.
#[derive(Debug, Clone)]
struct Step {
    layer: usize,
    density: f64,
    activation: Activation,
    units: usize,
    dense: Option<Dense>,
    csr: Option<Csr>,
    bias: Option<Vec<f32>>,
    batch1: Kernel,
    batched: Kernel,
}

impl Step {
    /// The kernel for `rows` rows; the other one when the chosen one's weights
    /// were never built (a CSR too large for 32-bit offsets).
    fn kernel(&self, rows: usize) -> Kernel {
        let chosen = if rows <= BATCH1_MAX {
            self.batch1
        } else {
            self.batched
        };
        match (chosen, &self.dense, &self.csr) {
            (Kernel::Csr, _, Some(_)) | (Kernel::Dense, None, Some(_)) => Kernel::Csr,
            _ => Kernel::Dense,
        }
    }

    /// `z ← x · W + b` with the kernel for `x`'s row count.
    fn linear_into(&self, x: ArrayView2<f32>, z: ArrayViewMut2<f32>) {
        self.linear_with(self.kernel(x.nrows()), x, z);
    }

    fn linear_with(&self, kernel: Kernel, x: ArrayView2<f32>, z: ArrayViewMut2<f32>) {
        match (kernel, &self.dense, &self.csr) {
            (Kernel::Csr, _, Some(c)) | (Kernel::Dense, None, Some(c)) => {
                c.linear_into(x, self.bias.as_deref(), z)
            }
            (_, Some(d), _) => d.linear_into(x, z),
            (_, None, None) => {}
        }
    }

    /// `act(x · W + b)` into a new array.
    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut z = Array2::zeros((x.nrows(), self.units));
        self.linear_into(x, z.view_mut());
        activation::apply_inplace(self.activation, z.view_mut());
        z
    }

    /// Keeps only the weights the chosen kernels read.
    fn drop_unused(&mut self) {
        let uses = |k| self.batch1 == k || self.batched == k;
        let (dense_used, csr_used) = (uses(Kernel::Dense), uses(Kernel::Csr));
        if !dense_used && self.csr.is_some() {
            self.dense = None;
        }
        if !csr_used && self.dense.is_some() {
            self.csr = None;
            self.bias = None;
        }
    }
}

/// One layer of the compiled network: a dense layer with its chosen kernels,
/// or any other layer kind that acts at inference, run by its own `forward`
/// (so a layer kind this planner does not know is asked, never skipped).
#[derive(Debug, Clone)]
enum Stage {
    Dense(Step),
    Layer(Layer),
}

impl Stage {
    fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        match self {
            Stage::Dense(step) => step.forward(x),
            Stage::Layer(layer) => layer.forward(x),
        }
    }
}

/// A network compiled for inference. It owns its weights (no borrow of the
/// [`Sequential`]), so a server can share it across threads.
#[derive(Debug, Clone)]
pub struct InferenceModel {
    input_dim: usize,
    output_dim: usize,
    steps: Vec<Stage>,
}

/// Compiles `model`, timing dense against CSR for every layer of density ≤ 0.5
/// on a deterministic random input.
pub fn compile(model: &Sequential) -> InferenceModel {
    compile_with(model, Choice::Measure)
}

/// Compiles `model` with the kernels `choice` says.
pub fn compile_with(model: &Sequential, choice: Choice) -> InferenceModel {
    build(model, choice, None)
}

/// [`compile`], timing on rows of `sample` (cycled; random rows when its width
/// is not the model's or it is empty): zeros in real inputs favour CSR, and
/// random inputs have none.
pub fn compile_on(model: &Sequential, sample: ArrayView2<f32>) -> InferenceModel {
    build(model, Choice::Measure, Some(sample))
}

fn build(model: &Sequential, choice: Choice, sample: Option<ArrayView2<f32>>) -> InferenceModel {
    let mut h = (choice == Choice::Measure).then(|| measurement_input(model, sample));
    let mut steps = Vec::new();
    for (layer, l) in model.layers().iter().enumerate() {
        let Some(d) = l.as_dense() else {
            if !l.is_identity_at_inference() {
                let lean = l.clone();
                if let Some(x) = &h {
                    h = Some(lean.forward(x.view()));
                }
                steps.push(Stage::Layer(lean));
            }
            continue;
        };
        let nonzeros = d.weight.nonzero();
        let density = if d.weight.is_empty() {
            0.0
        } else {
            nonzeros as f64 / d.weight.len() as f64
        };
        let wants_csr = match choice {
            Choice::Dense => false,
            Choice::Sparse => true,
            Choice::Measure => density <= MEASURE_MAX_DENSITY,
        };
        let csr = wants_csr
            .then(|| Csr::from_dense(d.weight.matrix().view()).ok())
            .flatten();
        let kernel = if csr.is_some() && choice == Choice::Sparse {
            Kernel::Csr
        } else {
            Kernel::Dense
        };
        let mut step = Step {
            layer,
            density,
            activation: d.activation,
            units: d.units(),
            dense: Some(lean(d)),
            bias: csr
                .as_ref()
                .and(d.bias.as_ref())
                .map(|b| b.matrix().iter().copied().collect()),
            csr,
            batch1: kernel,
            batched: kernel,
        };
        if let Some(x) = &h {
            if step.csr.is_some() {
                step.batch1 = faster(&step, x.slice(s![..1, ..]));
                step.batched = faster(&step, x.view());
            }
            h = Some(step.forward(x.view()));
        }
        step.drop_unused();
        steps.push(Stage::Dense(step));
    }
    InferenceModel {
        input_dim: model.input_dim(),
        output_dim: model.output_dim(),
        steps,
    }
}

/// A layer's weights without the gradient and mask inference never reads.
fn lean(d: &Dense) -> Dense {
    let lean = Param::for_inference;
    Dense {
        weight: lean(&d.weight),
        bias: d.bias.as_ref().map(lean),
        activation: d.activation,
    }
}

/// [`MEASURE_ROWS`] rows for the first layer: `sample`'s rows cycled when it
/// fits the model, else uniform in [-1, 1] from a fixed seed.
fn measurement_input(model: &Sequential, sample: Option<ArrayView2<f32>>) -> Array2<f32> {
    let width = model.input_dim();
    match sample {
        Some(x) if x.ncols() == width && x.nrows() > 0 => {
            Array2::from_shape_fn((MEASURE_ROWS, width), |(i, j)| x[(i % x.nrows(), j)])
        }
        _ => {
            let mut rng = ChaCha8Rng::seed_from_u64(MEASURE_SEED);
            Array2::from_shape_simple_fn((MEASURE_ROWS, width), || rng.random::<f32>() * 2.0 - 1.0)
        }
    }
}

/// The kernel that runs `x` faster through `step`; dense on a tie.
fn faster(step: &Step, x: ArrayView2<f32>) -> Kernel {
    let mut z = Array2::zeros((x.nrows(), step.units));
    let mut z2 = z.clone();
    let (dense, csr) = race(
        || step.linear_with(Kernel::Dense, x, std::hint::black_box(z.view_mut())),
        || step.linear_with(Kernel::Csr, x, std::hint::black_box(z2.view_mut())),
        MEASURE_BUDGET,
    );
    if csr < dense {
        Kernel::Csr
    } else {
        Kernel::Dense
    }
}

impl InferenceModel {
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    /// Network outputs, as [`Sequential::predict`]: probabilities for
    /// sigmoid/softmax heads, dropout the identity.
    ///
    /// # Panics
    /// If `x` does not have `input_dim` columns; check with [`Sequential::check_input`].
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(x.ncols(), self.input_dim, "input width");
        let mut h: Option<Array2<f32>> = None;
        for step in &self.steps {
            h = Some(step.forward(h.as_ref().map_or(x, |h| h.view())));
        }
        h.unwrap_or_else(|| x.to_owned())
    }

    /// [`Self::predict`] in chunks of `batch` rows, bounding temporary memory.
    pub fn predict_batched(&self, x: ArrayView2<f32>, batch: usize) -> Array2<f32> {
        let batch = batch.max(1);
        if x.nrows() <= batch {
            return self.predict(x);
        }
        let mut out = Array2::zeros((x.nrows(), self.output_dim));
        for (chunk, mut dst) in x
            .axis_chunks_iter(Axis(0), batch)
            .zip(out.axis_chunks_iter_mut(Axis(0), batch))
        {
            dst.assign(&self.predict(chunk));
        }
        out
    }

    /// The kernel every dense layer runs in each batch regime.
    pub fn kernels(&self) -> Vec<LayerKernel> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Stage::Dense(s) => Some(s),
                Stage::Layer(_) => None,
            })
            .map(|s| LayerKernel {
                layer: s.layer,
                density: s.density,
                batch1: s.kernel(1).name(),
                batched: s.kernel(BATCH1_MAX + 1).name(),
            })
            .collect()
    }
}

impl crate::predictor::Predictor for InferenceModel {
    fn input_dim(&self) -> usize {
        InferenceModel::input_dim(self)
    }

    fn output_dim(&self) -> usize {
        InferenceModel::output_dim(self)
    }

    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        InferenceModel::predict(self, x)
    }
}
