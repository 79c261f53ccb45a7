//! `Sequential`: a stack of layers built from a [`spec::Architecture`].
//!
//! Inference allocates its outputs ([`Sequential::predict`]); training runs
//! through a [`Workspace`] of buffers sized once for the batch, so the hot loop
//! does not allocate. Nothing here names a layer kind: every layer is reached
//! through [`crate::layers::LayerOps`].

use ndarray::{Array1, Array2, ArrayD, ArrayView2, ArrayViewMut2, Axis, s};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::spec::Architecture;
use crate::layers::activation::Activation;
use crate::layers::param::Param;
use crate::layers::shape::Shape;
use crate::layers::{BackwardPass, Init, Layer, UnsupportedLayer};
use crate::validation::Invalid;

#[derive(Debug, Clone, PartialEq)]
pub struct Sequential {
    architecture: Architecture,
    layers: Vec<Layer>,
}

/// The last layer's pre-activation (`logits`) and the network output.
#[derive(Debug, Clone)]
pub struct Forward {
    pub logits: Array2<f32>,
    pub output: Array2<f32>,
}

impl Sequential {
    /// A freshly initialised network; the same `seed` gives the same weights.
    ///
    /// # Panics
    /// If the layers do not chain, which [`Architecture::check`] rules out: call it
    /// (or [`Self::try_new`]) on an architecture a client sent.
    pub fn new(architecture: &Architecture, seed: u64) -> Self {
        Self::try_new(architecture, seed).expect("a checked architecture's layers chain")
    }

    /// [`Self::new`], or the first layer that cannot take its input.
    pub fn try_new(architecture: &Architecture, seed: u64) -> Result<Self, Invalid> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self::build(architecture, Init::Random(&mut rng))
    }

    /// A network from given weights: one `(weight [in, out], bias [out])` per dense
    /// layer, in order. Other layers with parameters start at zero (a model file
    /// loads them by name, see [`crate::layers::LayerOps::tensors`]). Errors
    /// describe the first mismatch with the architecture.
    pub fn from_weights(
        architecture: &Architecture,
        weights: Vec<(Array2<f32>, Option<Array1<f32>>)>,
    ) -> Result<Self, String> {
        let mut model = Self::build(architecture, Init::Zeros).map_err(|e| e.to_string())?;
        let mut it = weights.into_iter();
        for (i, layer) in model.layers.iter_mut().enumerate() {
            let Some(d) = layer.as_dense_mut() else {
                continue;
            };
            let width = d.inputs();
            let (w, b) = it
                .next()
                .ok_or_else(|| format!("layer {i} has no weights"))?;
            if w.dim() != (width, d.units()) {
                return Err(format!(
                    "layers.{i}.weight has shape {:?}; expected [{width}, {}]",
                    w.shape(),
                    d.units()
                ));
            }
            let units = d.units();
            match (&mut d.bias, b) {
                (Some(p), Some(b)) if b.len() == units => {
                    *p = Param::new(b.insert_axis(Axis(0)));
                }
                (Some(_), Some(b)) => {
                    return Err(format!(
                        "layers.{i}.bias has {} values; expected {}",
                        b.len(),
                        units
                    ));
                }
                (Some(_), None) => return Err(format!("layers.{i}.bias is missing")),
                (None, Some(_)) => {
                    return Err(format!("layers.{i}.bias given for a layer without bias"));
                }
                (None, None) => {}
            }
            d.weight = Param::new(w);
        }
        if it.next().is_some() {
            return Err("more weight tensors than dense layers".into());
        }
        Ok(model)
    }

    /// Walks the architecture, making each layer for the shape the previous one gives.
    pub(crate) fn build(architecture: &Architecture, mut init: Init<'_>) -> Result<Self, Invalid> {
        let mut shape = architecture.input();
        let mut layers = Vec::with_capacity(architecture.layers.len());
        for (i, spec) in architecture.layers.iter().enumerate() {
            let layer = Layer::from_spec(spec, &shape, &mut init).map_err(|e| e.at(i))?;
            shape = layer
                .output_shape(&shape)
                .map_err(|e| Invalid::one(format!("layers[{i}]"), e.to_string()))?;
            layers.push(layer);
        }
        Ok(Self {
            architecture: architecture.clone(),
            layers,
        })
    }

    /// A network from ready-made layers; the architecture is read off them.
    /// Layers must chain (each takes the shape the one before gives, the first
    /// `[input_dim]`); see [`crate::optimize::surgery`] for the checked entry.
    pub(crate) fn from_layers(input_dim: usize, layers: Vec<Layer>) -> Self {
        let specs = layers.iter().map(|l| l.spec()).collect();
        Self {
            architecture: Architecture::flat(input_dim, specs),
            layers,
        }
    }

    /// A network over the same input as `self` made of `layers` (which must
    /// chain from that input); the architecture is read off them.
    pub(crate) fn with_layers(&self, layers: Vec<Layer>) -> Self {
        Self {
            architecture: Architecture {
                input_dim: self.architecture.input_dim,
                input_shape: self.architecture.input_shape.clone(),
                layers: layers.iter().map(|l| l.spec()).collect(),
            },
            layers,
        }
    }

    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Mutable access to layers (e.g. to set masks). Shapes must not change.
    pub fn layers_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }

    pub fn input_dim(&self) -> usize {
        self.architecture.input_dim
    }

    pub fn output_dim(&self) -> usize {
        self.architecture.output_dim()
    }

    pub fn output_activation(&self) -> Activation {
        self.architecture.output_activation()
    }

    /// `(layer index, layer)` for every dense layer.
    pub fn dense_layers(&self) -> impl Iterator<Item = (usize, &crate::layers::dense::Dense)> {
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_dense().map(|d| (i, d)))
    }

    /// `(layer index, weight tensor)` for every dense and conv2d layer; see
    /// [`Layer::kernel`].
    pub fn kernel_layers(&self) -> impl Iterator<Item = (usize, &Param)> {
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.kernel().map(|k| (i, k)))
    }

    /// The dense layers for `operation`, an algorithm that only knows dense
    /// layers: any other layer with parameters is refused, not passed over.
    pub fn dense_only(
        &self,
        operation: &'static str,
    ) -> Result<Vec<(usize, &crate::layers::dense::Dense)>, UnsupportedLayer> {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.has_params())
            .map(|(i, l)| l.dense(i, operation).map(|d| (i, d)))
            .collect()
    }

    /// Every trainable tensor of every layer, in layer order, weights before
    /// biases within a layer.
    pub fn params(&self) -> Vec<&Param> {
        let mut out = Vec::new();
        for layer in &self.layers {
            layer.push_params(&mut out);
        }
        out
    }

    /// Same order as [`Self::params`].
    pub fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut out = Vec::new();
        for layer in &mut self.layers {
            layer.push_params_mut(&mut out);
        }
        out
    }

    pub fn param_count(&self) -> u64 {
        self.params().iter().map(|p| p.len() as u64).sum()
    }

    pub fn nonzero_params(&self) -> u64 {
        self.params().iter().map(|p| p.nonzero()).sum()
    }

    /// Copies of every parameter value (for early stopping's best weights).
    pub fn snapshot(&self) -> Vec<ArrayD<f32>> {
        self.params().iter().map(|p| p.value().clone()).collect()
    }

    /// Restores values taken by [`Self::snapshot`] of this same model.
    pub fn restore(&mut self, snapshot: &[ArrayD<f32>]) {
        for (p, v) in self.params_mut().into_iter().zip(snapshot) {
            p.value_mut().assign(v);
        }
    }

    /// Index one past the last layer that acts at inference: trailing dropout
    /// layers are ignored (they would only drop network outputs).
    fn end(&self) -> usize {
        self.layers
            .iter()
            .rposition(|l| !l.is_identity_at_inference())
            .map_or(0, |i| i + 1)
    }

    /// `Err` describing the mismatch unless `x` has `input_dim` columns and only
    /// finite values. [`Self::predict`] and [`Self::forward`] panic on a wrong width,
    /// so call this first on data a client sent.
    pub fn check_input(&self, x: ArrayView2<f32>) -> Result<(), String> {
        if x.ncols() != self.input_dim() {
            return Err(format!(
                "the model expects {} features; the input has {}",
                self.input_dim(),
                x.ncols()
            ));
        }
        if let Some(pos) = x.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "row {} holds a non-finite value",
                pos / x.ncols().max(1)
            ));
        }
        Ok(())
    }

    /// Inference forward pass keeping the last pre-activation.
    ///
    /// # Panics
    /// If `x` does not have `input_dim` columns; callers check the dataset first.
    pub fn forward(&self, x: ArrayView2<f32>) -> Forward {
        assert_eq!(x.ncols(), self.input_dim(), "input width");
        let end = self.end();
        let mut h: Option<Array2<f32>> = None;
        let mut logits = None;
        for (i, layer) in self.layers[..end].iter().enumerate() {
            if layer.is_identity_at_inference() {
                continue;
            }
            let input = h.as_ref().map_or(x, |h| h.view());
            if i + 1 == end {
                let (z, a) = layer.forward_logits(input);
                logits = Some(z);
                h = Some(a);
            } else {
                h = Some(layer.forward(input));
            }
        }
        let output = h.unwrap_or_else(|| x.to_owned());
        Forward {
            logits: logits.unwrap_or_else(|| output.clone()),
            output,
        }
    }

    /// Network outputs: probabilities for sigmoid/softmax heads, values otherwise.
    ///
    /// # Panics
    /// If `x` does not have `input_dim` columns.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(x.ncols(), self.input_dim(), "input width");
        let end = self.end();
        let mut h: Option<Array2<f32>> = None;
        for layer in &self.layers[..end] {
            if !layer.is_identity_at_inference() {
                h = Some(layer.forward(h.as_ref().map_or(x, |h| h.view())));
            }
        }
        h.unwrap_or_else(|| x.to_owned())
    }

    /// [`Self::predict`] in chunks of `batch` rows, bounding temporary memory.
    pub fn predict_batched(&self, x: ArrayView2<f32>, batch: usize) -> Array2<f32> {
        let batch = batch.max(1);
        if x.nrows() <= batch {
            return self.predict(x);
        }
        let mut out = Array2::zeros((x.nrows(), self.output_dim()));
        let mut start = 0;
        while start < x.nrows() {
            let stop = (start + batch).min(x.nrows());
            let y = self.predict(x.slice(s![start..stop, ..]));
            out.slice_mut(s![start..stop, ..]).assign(&y);
            start = stop;
        }
        out
    }

    /// Training forward pass over the first `n` rows of `ws.x` (dropout active).
    pub fn forward_train(&self, ws: &mut Workspace, n: usize, rng: &mut ChaCha8Rng) {
        let end = self.end();
        for i in 0..end {
            let (before, rest) = ws.a.split_at_mut(i);
            let input = if i == 0 {
                ws.x.slice(s![..n, ..])
            } else {
                before[i - 1].slice(s![..n, ..])
            };
            let out = rest[0].slice_mut(s![..n, ..]);
            self.layers[i].forward_train(input, ws.scratch[i].slice_mut(s![..n, ..]), out, rng);
        }
    }

    /// Backward pass after [`Self::forward_train`]. `ws.head_grad_mut()` must hold
    /// `∂L/∂z` of the last layer when `grad_is_wrt_logits`, else `∂L/∂output`.
    /// Writes every parameter's `grad`.
    pub fn backward(&mut self, ws: &mut Workspace, n: usize, grad_is_wrt_logits: bool) {
        let end = self.end();
        let first_trainable = self
            .layers
            .iter()
            .position(|l| l.has_params())
            .unwrap_or(end);
        for i in (0..end).rev() {
            let (g_before, g_rest) = ws.g.split_at_mut(i);
            let needs_dx = i > first_trainable;
            let input = if i == 0 {
                ws.x.slice(s![..n, ..])
            } else {
                ws.a[i - 1].slice(s![..n, ..])
            };
            self.layers[i].backward(BackwardPass {
                input,
                scratch: ws.scratch[i].slice(s![..n, ..]),
                output: ws.a[i].slice(s![..n, ..]),
                g_out: g_rest[0].slice_mut(s![..n, ..]),
                g_in: needs_dx.then(|| g_before[i - 1].slice_mut(s![..n, ..])),
                g_is_wrt_logits: grad_is_wrt_logits && i + 1 == end,
            });
        }
    }
}

/// Preallocated training buffers for batches of up to `capacity` rows.
///
/// Each layer's buffers hold `[capacity, shape.size()]` rows for its per-sample
/// output (and scratch) [`Shape`], the memory of a `[capacity, shape...]` tensor.
#[derive(Debug)]
pub struct Workspace {
    capacity: usize,
    /// The gathered input batch `[capacity, input_dim]`.
    pub x: Array2<f32>,
    /// The gathered targets `[capacity]`.
    pub y: Array1<f32>,
    /// Per layer: the sample shape of its output (and of `a`, `g`).
    shapes: Vec<Shape>,
    /// Per layer: what its forward pass leaves for backward (logits, masks).
    scratch: Vec<Array2<f32>>,
    a: Vec<Array2<f32>>,
    g: Vec<Array2<f32>>,
    head: usize,
}

impl Workspace {
    /// # Panics
    /// If the model's layers do not chain, which `Sequential`'s constructors rule out.
    pub fn new(model: &Sequential, capacity: usize) -> Self {
        let end = model.end();
        let mut shape = model.architecture.input();
        let (mut shapes, mut scratch, mut a, mut g) = (vec![], vec![], vec![], vec![]);
        let rows = |s: Option<&Shape>| Array2::<f32>::zeros((capacity, s.map_or(0, Shape::size)));
        for layer in &model.layers[..end] {
            let chained = "a Sequential's layers chain";
            let s = layer.scratch_shape(&shape).expect(chained);
            scratch.push(rows(s.as_ref()));
            shape = layer.output_shape(&shape).expect(chained);
            a.push(rows(Some(&shape)));
            g.push(rows(Some(&shape)));
            shapes.push(shape.clone());
        }
        Self {
            capacity,
            x: Array2::zeros((capacity, model.input_dim())),
            y: Array1::zeros(capacity),
            shapes,
            scratch,
            a,
            g,
            head: end.saturating_sub(1),
        }
    }

    /// The per-sample output shape of each layer the training passes run.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }

    /// Layer `layer`'s output for the first `n` rows as a `[n, shape...]`
    /// tensor (`[n, C, H, W]` for images): the same memory as its row buffer.
    ///
    /// # Panics
    /// If `layer` is not a layer the training passes run or `n` exceeds the capacity.
    pub fn output_tensor(&self, layer: usize, n: usize) -> ndarray::ArrayViewD<'_, f32> {
        let mut dims = vec![n];
        dims.extend_from_slice(self.shapes[layer].dims());
        self.a[layer]
            .slice(s![..n, ..])
            .into_shape_with_order(ndarray::IxDyn(&dims))
            .expect("a layer buffer holds shape.size() scalars per row, row-major")
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Copies rows `idx` of `x` and `y` into the batch buffers.
    pub fn gather(&mut self, x: ArrayView2<f32>, y: ndarray::ArrayView1<f32>, idx: &[usize]) {
        for (r, &i) in idx.iter().enumerate() {
            let src = x.row(i);
            let mut dst = self.x.row_mut(r);
            match (src.as_slice(), dst.as_slice_mut()) {
                (Some(s), Some(d)) => d.copy_from_slice(s),
                _ => dst.assign(&src),
            }
            self.y[r] = y[i];
        }
    }

    /// Pre-activation of the last layer for the first `n` rows.
    pub fn logits(&self, n: usize) -> ArrayView2<'_, f32> {
        self.scratch[self.head].slice(s![..n, ..])
    }

    /// Network output for the first `n` rows.
    pub fn output(&self, n: usize) -> ArrayView2<'_, f32> {
        self.a[self.head].slice(s![..n, ..])
    }

    /// Both the head's logits, output and gradient buffer, for the loss to fill.
    pub fn head_mut(
        &mut self,
        n: usize,
    ) -> (
        ArrayView2<'_, f32>,
        ArrayView2<'_, f32>,
        ArrayViewMut2<'_, f32>,
        ndarray::ArrayView1<'_, f32>,
    ) {
        (
            self.scratch[self.head].slice(s![..n, ..]),
            self.a[self.head].slice(s![..n, ..]),
            self.g[self.head].slice_mut(s![..n, ..]),
            self.y.slice(s![..n]),
        )
    }
}

impl crate::predictor::Predictor for Sequential {
    fn input_dim(&self) -> usize {
        Sequential::input_dim(self)
    }

    fn output_dim(&self) -> usize {
        Sequential::output_dim(self)
    }

    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        Sequential::predict(self, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn arch(json: &str) -> Architecture {
        serde_json::from_str(json).expect("architecture parses")
    }

    #[test]
    fn the_same_seed_builds_the_same_weights_and_another_seed_does_not() {
        let a = arch(
            r#"{"input_dim": 5, "layers": [{"type": "dense", "units": 4, "activation": "relu"},
                {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 2, "activation": "softmax"}]}"#,
        );
        assert_eq!(Sequential::new(&a, 1), Sequential::new(&a, 1));
        assert_ne!(Sequential::new(&a, 1), Sequential::new(&a, 2));
        let m = Sequential::new(&a, 1);
        assert_eq!(m.param_count(), a.param_count());
        let p = m.predict(Array2::ones((3, 5)).view());
        assert_eq!(p.dim(), (3, 2));
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn the_training_forward_without_dropout_equals_inference() {
        let a = arch(
            r#"{"input_dim": 3, "layers": [{"type": "dense", "units": 4, "activation": "tanh"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        );
        let m = Sequential::new(&a, 7);
        let x = Array2::from_shape_fn((6, 3), |(i, j)| (i * 3 + j) as f32 * 0.1 - 0.8);
        let mut ws = Workspace::new(&m, 8);
        ws.x.slice_mut(s![..6, ..]).assign(&x);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        m.forward_train(&mut ws, 6, &mut rng);
        let f = m.forward(x.view());
        assert_eq!(ws.output(6), f.output.view());
        assert_eq!(ws.logits(6), f.logits.view());
    }

    #[test]
    fn a_layer_output_reads_as_a_batch_tensor_of_its_sample_shape() {
        let a = arch(
            r#"{"input_dim": 3, "layers": [{"type": "dense", "units": 4, "activation": "relu"},
                {"type": "dense", "units": 2, "activation": "linear"}]}"#,
        );
        let m = Sequential::new(&a, 3);
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i + j) as f32 * 0.2 - 0.5);
        let mut ws = Workspace::new(&m, 8);
        ws.x.slice_mut(s![..5, ..]).assign(&x);
        m.forward_train(&mut ws, 5, &mut ChaCha8Rng::seed_from_u64(0));
        let hidden = ws.output_tensor(0, 5);
        assert_eq!(hidden.shape(), &[5, 4]);
        let want = m.layers()[0].forward(x.view());
        assert_eq!(hidden, want.into_dyn().view());
        assert_eq!(ws.output_tensor(1, 2).shape(), &[2, 2]);
    }

    #[test]
    fn dense_only_passes_over_dropout_and_lists_the_dense_layers() {
        let a = arch(
            r#"{"input_dim": 3, "layers": [{"type": "dense", "units": 4},
                {"type": "dropout", "rate": 0.5}, {"type": "dense", "units": 1}]}"#,
        );
        let m = Sequential::new(&a, 1);
        let dense = m
            .dense_only("a test")
            .expect("all parametric layers are dense");
        assert_eq!(dense.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [0, 2]);
        let err = m.layers()[1].dense(1, "a test").expect_err("dropout");
        assert_eq!(
            err.to_string(),
            "layer 1 is a dropout layer, which a test does not support"
        );
    }

    #[test]
    fn input_of_the_wrong_width_or_with_nan_is_described_not_predicted() {
        let a = arch(r#"{"input_dim": 3, "layers": [{"type": "dense", "units": 1}]}"#);
        let m = Sequential::new(&a, 1);
        let err = m
            .check_input(Array2::zeros((2, 4)).view())
            .expect_err("width");
        assert!(err.contains("expects 3 features"), "{err}");
        let mut x = Array2::zeros((2, 3));
        x[(1, 2)] = f32::NAN;
        assert_eq!(
            m.check_input(x.view()),
            Err("row 1 holds a non-finite value".into())
        );
        assert!(m.check_input(Array2::zeros((2, 3)).view()).is_ok());
    }
}
