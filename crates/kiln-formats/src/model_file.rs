//! kiln model files: standard `safetensors`, readable by Python's `safetensors` package.
//!
//! Layout (format version 1):
//! * one tensor per dense layer weight, `layers.{i}.weight`, F32, shape `[in, out]`,
//!   row-major, and `layers.{i}.bias`, F32, shape `[out]` (absent when `use_bias` is
//!   false). `i` is the index in `architecture.layers`, counting dropout layers, as
//!   PyTorch's `nn.Sequential` names its children;
//! * `__metadata__` (string → string): `format` = `kiln`, `format_version` = `1`,
//!   `architecture` (the JSON architecture), `dtype` = `f32`, `trained` (`true`/`false`),
//!   `task` (`binary`/`multiclass`/`regression` or empty), `parent_id`, `job_id`
//!   (UUIDs or empty). Other metadata keys are kept in [`ModelMeta::extra`] and written back.
//!
//! A pruned weight matrix is stored as CSR when that is smaller (see
//! [`super::sparse_layout`]); `__metadata__.sparse_layout` names those layers. A layer
//! read back from CSR gets a pruning mask from its stored pattern, so fine-tuning
//! a pruned model keeps it pruned.
//!
//! In PyTorch, `torch.nn.Linear.weight` is `[out, in]`: load kiln's weights transposed.
//!
//! [`decode`] never panics and names every problem with the field `file`.

use std::collections::BTreeMap;

use ndarray::{Array1, Array2};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::quantized::{self, Quantization};
use super::sparse_layout::{self, RawTensor};
use kiln_nn::Sequential;
use kiln_nn::data::Task;
use kiln_nn::layers::UnsupportedLayer;
use kiln_nn::spec::{Architecture, ArchitectureLimits, LayerSpec};
use kiln_nn::validation::Invalid;

pub use super::model_meta::{FORMAT, FORMAT_VERSION, ModelFile, ModelMeta};

const FIELD: &str = "file";
const KNOWN_KEYS: [&str; 10] = [
    sparse_layout::METADATA_KEY,
    quantized::METADATA_KEY,
    "format",
    "format_version",
    "architecture",
    "dtype",
    "trained",
    "task",
    "parent_id",
    "job_id",
];

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("could not write the architecture: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Unsupported(#[from] UnsupportedLayer),
}

fn le_bytes(values: impl Iterator<Item = f32>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

/// Writes `file` as safetensors. The model's own architecture is authoritative.
pub fn encode(file: &ModelFile) -> Result<Vec<u8>, EncodeError> {
    let model = &file.model;
    let mut buffers: Vec<RawTensor> = Vec::new();
    let mut sparse: BTreeMap<String, &str> = BTreeMap::new();
    for (i, layer) in model.layers().iter().enumerate() {
        let Some(d) = layer.as_dense() else {
            for (suffix, t) in layer.tensors() {
                buffers.push((
                    format!("layers.{i}.{suffix}"),
                    Dtype::F32,
                    t.shape().to_vec(),
                    le_bytes(t.iter().copied()),
                ));
            }
            continue;
        };
        let w = &d.weight.matrix();
        let name = format!("layers.{i}.weight");
        let int8 = file.meta.quantization.as_ref().and_then(|q| q.layer(i));
        if let Some(l) = int8 {
            buffers.extend(quantized::encode_layer(l));
        } else if sparse_layout::should_store_csr(w.view()) {
            buffers.extend(sparse_layout::encode_csr(&name, w.view()));
            sparse.insert(name, "csr");
        } else {
            buffers.push((
                name,
                Dtype::F32,
                vec![w.nrows(), w.ncols()],
                le_bytes(w.iter().copied()),
            ));
        }
        if let Some(b) = &d.bias {
            buffers.push((
                format!("layers.{i}.bias"),
                Dtype::F32,
                vec![b.matrix().len()],
                le_bytes(b.matrix().iter().copied()),
            ));
        }
    }
    let meta = &file.meta;
    let mut md: BTreeMap<String, String> = meta.extra.clone();
    if !sparse.is_empty() {
        md.insert(
            sparse_layout::METADATA_KEY.into(),
            serde_json::to_string(&sparse)?,
        );
    }
    md.insert("format".into(), FORMAT.into());
    md.insert("format_version".into(), FORMAT_VERSION.to_string());
    md.insert(
        "architecture".into(),
        serde_json::to_string(model.architecture())?,
    );
    match &meta.quantization {
        Some(q) => {
            md.insert("dtype".into(), "int8".into());
            md.insert(quantized::METADATA_KEY.into(), q.header_json()?);
        }
        None => {
            md.insert("dtype".into(), "f32".into());
        }
    }
    md.insert("trained".into(), meta.trained.to_string());
    md.insert(
        "task".into(),
        meta.task
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
    );
    md.insert(
        "parent_id".into(),
        meta.parent_id.clone().unwrap_or_default(),
    );
    md.insert("job_id".into(), meta.job_id.clone().unwrap_or_default());
    Ok(write_safetensors(&buffers, &md)?)
}

/// Writes the standard safetensors layout — 8-byte little-endian header length,
/// JSON header padded with spaces to a multiple of 8, then the tensor bytes —
/// with keys in a fixed order, so the same model always gives the same bytes
/// (and the same sha256). `safetensors::serialize` takes a `HashMap` whose
/// iteration order changes from run to run.
fn write_safetensors(
    tensors: &[RawTensor],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut header = String::from("{\"__metadata__\":");
    header.push_str(&serde_json::to_string(metadata)?);
    let mut offset = 0usize;
    for (name, dtype, shape, bytes) in tensors {
        let end = offset + bytes.len();
        header.push(',');
        header.push_str(&serde_json::to_string(name)?);
        header.push_str(&format!(
            ":{{\"dtype\":{},\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
            serde_json::to_string(dtype)?,
            serde_json::to_string(shape)?
        ));
        offset = end;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    Ok(out)
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid::one(FIELD, message)
}

fn describe(err: &SafeTensorError) -> String {
    match err {
        SafeTensorError::HeaderTooSmall => "the file is too short to be safetensors".into(),
        SafeTensorError::InvalidHeaderLength | SafeTensorError::MetadataIncompleteBuffer => {
            "the file is truncated or has trailing bytes (its length does not match its header)"
                .into()
        }
        other => format!("not a valid safetensors file: {other}"),
    }
}

fn optional(value: Option<&String>) -> Option<String> {
    value.filter(|v| !v.is_empty()).cloned()
}

/// Reads and checks a safetensors kiln model file; [`super::model::read`] is
/// the entry point that also takes the compressed artifact. Every problem is
/// reported with field `file`.
pub(super) fn decode(bytes: &[u8]) -> Result<ModelFile, Invalid> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| invalid(describe(&e)))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| invalid(describe(&e)))?;
    let md = header.metadata().as_ref().ok_or_else(|| {
        invalid("the safetensors header has no __metadata__; not a kiln model file")
    })?;

    let format = md.get("format").map(String::as_str);
    if format != Some(FORMAT) {
        return Err(invalid(format!(
            "__metadata__.format must be \"{FORMAT}\"; found {}",
            format.map_or("nothing".to_string(), |f| format!("{f:?}"))
        )));
    }
    match md.get("format_version").map(|v| v.parse::<u32>()) {
        Some(Ok(FORMAT_VERSION)) => {}
        Some(Ok(v)) => {
            return Err(invalid(format!(
                "format_version {v} is not supported; this kiln reads version {FORMAT_VERSION}"
            )));
        }
        _ => {
            return Err(invalid(
                "__metadata__.format_version is missing or not a number",
            ));
        }
    }
    let arch_json = md
        .get("architecture")
        .ok_or_else(|| invalid("__metadata__.architecture is missing"))?;
    let architecture: Architecture = serde_json::from_str(arch_json).map_err(|e| {
        invalid(format!(
            "__metadata__.architecture is not a valid architecture: {e}"
        ))
    })?;
    if let Err(e) = architecture.check(&ArchitectureLimits::default()) {
        return Err(Invalid(
            e.0.into_iter()
                .map(|fe| {
                    kiln_nn::validation::FieldError::new(
                        FIELD,
                        format!("architecture.{}: {}", fe.field, fe.message),
                    )
                })
                .collect(),
        ));
    }
    let int8_header = quantized::header(md)?;
    match (md.get("dtype").map(String::as_str), &int8_header) {
        (Some("f32") | None, None) | (Some("int8"), Some(_)) => {}
        (Some("int8"), None) => {
            return Err(invalid(format!(
                "dtype \"int8\" needs __metadata__.{}",
                quantized::METADATA_KEY
            )));
        }
        (other, _) => {
            return Err(invalid(format!(
                "dtype {:?} does not match the file: expected \"f32\", or \"int8\" with __metadata__.{}",
                other.unwrap_or(""),
                quantized::METADATA_KEY
            )));
        }
    }
    let mut int8_layers: Vec<kiln_nn::optimize::quant::qmodel::LayerQuant> = Vec::new();
    let trained = match md.get("trained").map(String::as_str) {
        Some("true") => true,
        Some("false") | None => false,
        Some(other) => {
            return Err(invalid(format!(
                "__metadata__.trained must be \"true\" or \"false\"; found {other:?}"
            )));
        }
    };
    let task = match optional(md.get("task")) {
        None => None,
        Some(t) => Some(Task::parse(&t).ok_or_else(|| {
            invalid(format!(
                "__metadata__.task must be binary, multiclass or regression; found {t:?}"
            ))
        })?),
    };

    let mut sparse: BTreeMap<String, String> = match md.get(sparse_layout::METADATA_KEY) {
        None => BTreeMap::new(),
        Some(json) => serde_json::from_str(json).map_err(|e| {
            invalid(format!(
                "__metadata__.{} is not a JSON object of layouts: {e}",
                sparse_layout::METADATA_KEY
            ))
        })?,
    };
    if let Some((name, layout)) = sparse.iter().find(|(_, l)| l.as_str() != "csr") {
        return Err(invalid(format!(
            "{name} has sparse layout {layout:?}; this kiln reads \"csr\""
        )));
    }

    // Tensors: exactly one weight (and bias) per dense layer, right dtype and shape, finite.
    let mut expected: Vec<String> = Vec::new();
    let mut masked: Vec<usize> = Vec::new();
    let mut weights = Vec::new();
    // `check` passed, so the shape walk succeeds; a dense layer's width is the size before it.
    let shapes = architecture.shapes().map_err(|e| invalid(e.to_string()))?;
    for (i, layer) in architecture.layers.iter().enumerate() {
        let width = match i {
            0 => architecture.input_dim,
            _ => shapes[i - 1].size(),
        };
        if let LayerSpec::Dense {
            units, use_bias, ..
        } = *layer
        {
            let w_name = format!("layers.{i}.weight");
            let w = if let Some((config, _)) = int8_header.as_ref().filter(|(_, l)| l.contains(&i))
            {
                let l = quantized::decode_layer(&st, config, i, width, units, &mut expected)?;
                let w = l.weight.dequantize();
                int8_layers.push(l);
                w
            } else if sparse.remove(&w_name).is_some() {
                expected.extend(sparse_layout::tensor_names(&w_name));
                masked.push(i);
                sparse_layout::decode_csr(&st, &w_name, width, units)?
            } else {
                let w = read_tensor(&st, &w_name, &[width, units])?;
                expected.push(w_name.clone());
                Array2::from_shape_vec((width, units), w)
                    .map_err(|e| invalid(format!("{w_name}: {e}")))?
            };
            let b = if use_bias {
                let b_name = format!("layers.{i}.bias");
                let b = read_tensor(&st, &b_name, &[units])?;
                expected.push(b_name);
                Some(Array1::from(b))
            } else {
                None
            };
            weights.push((w, b));
        }
    }
    if let Some(name) = sparse.keys().next() {
        return Err(invalid(format!(
            "__metadata__.{} names {name}, which is not a dense layer weight of this architecture",
            sparse_layout::METADATA_KEY
        )));
    }
    let quantization = match int8_header {
        None => None,
        Some((config, listed)) => {
            if let Some(i) = listed
                .iter()
                .find(|i| !int8_layers.iter().any(|l| l.layer == **i))
            {
                return Err(invalid(format!(
                    "__metadata__.{} lists layer {i}, which is not a dense layer of this architecture",
                    quantized::METADATA_KEY
                )));
            }
            Some(Quantization {
                config,
                layers: int8_layers,
            })
        }
    };
    let mut model = Sequential::from_weights(&architecture, weights).map_err(invalid)?;
    // Every other layer's tensors by name, in the shapes the layer has.
    for (i, layer) in model.layers_mut().iter_mut().enumerate() {
        let wanted: Vec<(&'static str, Vec<usize>)> = layer
            .tensors()
            .iter()
            .map(|(name, t)| (*name, t.shape().to_vec()))
            .collect();
        for (suffix, shape) in wanted {
            let name = format!("layers.{i}.{suffix}");
            let values = read_tensor(&st, &name, &shape)?;
            if suffix == "running_var" && values.iter().any(|v| *v < 0.0) {
                return Err(invalid(format!("{name} holds a negative variance")));
            }
            expected.push(name.clone());
            if let Some(mut dst) = layer.tensor_mut(suffix) {
                dst.iter_mut().zip(values).for_each(|(d, v)| *d = v);
            }
        }
    }
    let mut unexpected: Vec<&str> = st
        .names()
        .into_iter()
        .filter(|n| !expected.iter().any(|e| e == n))
        .collect();
    if !unexpected.is_empty() {
        unexpected.sort_unstable();
        return Err(invalid(format!(
            "unexpected tensors for this architecture: {}",
            unexpected.join(", ")
        )));
    }
    for i in masked {
        if let Some(d) = model.layers_mut().get_mut(i).and_then(|l| l.as_dense_mut()) {
            d.weight
                .set_mask(d.weight.matrix().mapv(|v| if v != 0.0 { 1.0 } else { 0.0 }));
        }
    }
    let extra = md
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(ModelFile {
        model,
        meta: ModelMeta {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            architecture,
            dtype: if quantization.is_some() {
                "int8"
            } else {
                "f32"
            }
            .into(),
            trained,
            task,
            parent_id: optional(md.get("parent_id")),
            job_id: optional(md.get("job_id")),
            extra,
            quantization,
        },
    })
}

/// An F32 tensor of exactly `shape` (what the architecture needs), all finite.
fn read_tensor(st: &SafeTensors<'_>, name: &str, shape: &[usize]) -> Result<Vec<f32>, Invalid> {
    let data = super::tensor::exact(st, name, Dtype::F32, shape)?;
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(pos) = values.iter().position(|v| !v.is_finite()) {
        return Err(invalid(format!(
            "tensor {name} holds a non-finite value ({}) at flat index {pos}",
            values[pos]
        )));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use safetensors::tensor::TensorView;
    use std::collections::HashMap;

    fn seed_arch() -> Architecture {
        serde_json::from_str(
            r#"{"input_dim": 10, "layers": [
                {"type": "dense", "units": 8, "activation": "relu"},
                {"type": "dropout", "rate": 0.2},
                {"type": "dense", "units": 4, "activation": "relu", "use_bias": false},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        )
        .expect("parses")
    }

    fn sample_file() -> ModelFile {
        let mut f = ModelFile::untrained(&seed_arch(), 5);
        f.meta.trained = true;
        f.meta.task = Some(Task::Binary);
        f.meta.parent_id = Some("0196a2c4-0000-7000-8000-000000000001".into());
        f.meta.extra.insert("note".into(), "kept".into());
        f
    }

    #[test]
    fn encode_then_decode_gives_bit_identical_predictions_and_metadata() {
        let f = sample_file();
        let bytes = encode(&f).expect("encodes");
        let back = decode(&bytes).expect("decodes");
        assert_eq!(back.meta, f.meta);
        let x = Array2::from_shape_fn((7, 10), |(i, j)| (i as f32 - 3.0) * 0.37 + j as f32 * 0.11);
        let a = f.model.predict(x.view());
        let b = back.model.predict(x.view());
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        // Tensor names and layout a Python reader sees.
        let st = SafeTensors::deserialize(&bytes).expect("safetensors");
        let mut names = st.names();
        names.sort_unstable();
        assert_eq!(
            names,
            vec![
                "layers.0.bias",
                "layers.0.weight",
                "layers.2.weight",
                "layers.3.bias",
                "layers.3.weight"
            ]
        );
        assert_eq!(
            st.tensor("layers.0.weight").expect("present").shape(),
            &[10, 8]
        );
    }

    #[test]
    fn truncated_or_garbage_bytes_are_rejected_naming_the_file_without_panicking() {
        let bytes = encode(&sample_file()).expect("encodes");
        let mut inputs: Vec<Vec<u8>> = vec![
            vec![],
            b"hello".to_vec(),
            vec![0xff; 64],
            u64::MAX.to_le_bytes().to_vec(),
        ];
        for cut in [1, 7, 8, 9, 40, bytes.len() / 2, bytes.len() - 1] {
            inputs.push(bytes[..cut].to_vec());
        }
        // Flip bytes throughout the header and the data.
        for pos in (0..bytes.len()).step_by(17) {
            let mut b = bytes.clone();
            b[pos] ^= 0x5a;
            inputs.push(b);
        }
        for input in inputs {
            match decode(&input) {
                Ok(_) => {} // a flipped data byte can still be a valid finite weight
                Err(e) => assert!(e.0.iter().all(|fe| fe.field == "file"), "{e}"),
            }
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    fn with(tensors: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)>, md: &[(&str, &str)]) -> Vec<u8> {
        let views: Vec<(String, TensorView<'_>)> = tensors
            .iter()
            .map(|(n, d, s, b)| {
                (
                    n.to_string(),
                    TensorView::new(*d, s.clone(), b).expect("view"),
                )
            })
            .collect();
        let md: HashMap<String, String> = md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        safetensors::serialize(views, Some(md)).expect("serialize")
    }

    fn message(bytes: &[u8]) -> String {
        let err = decode(bytes).expect_err("must be rejected");
        assert!(err.0.iter().all(|fe| fe.field == "file"));
        err.to_string()
    }

    #[test]
    fn each_kind_of_malformed_model_file_is_named() {
        let arch = r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 1}]}"#;
        let md = [
            ("format", "kiln"),
            ("format_version", "1"),
            ("architecture", arch),
        ];
        let w = |v: [f32; 2]| le_bytes(v.into_iter());
        let b = le_bytes([0.5f32].into_iter());
        let good = vec![
            ("layers.0.weight", Dtype::F32, vec![2, 1], w([1.0, 2.0])),
            ("layers.0.bias", Dtype::F32, vec![1], b.clone()),
        ];
        assert!(decode(&with(good.clone(), &md)).is_ok());

        assert!(message(&with(good.clone(), &[])).contains("format"));
        let no_meta = safetensors::serialize(
            vec![(
                "x".to_string(),
                TensorView::new(Dtype::F32, vec![1], &b).expect("view"),
            )],
            None,
        )
        .expect("serialize");
        assert!(message(&no_meta).contains("__metadata__"));
        assert!(message(&with(good.clone(), &md[..2])).contains("architecture"));
        let bad_json = [md[0], md[1], ("architecture", "{\"input_dim\": 2")];
        assert!(message(&with(good.clone(), &bad_json)).contains("architecture"));
        let zero_units = [
            md[0],
            md[1],
            (
                "architecture",
                r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 0}]}"#,
            ),
        ];
        assert!(message(&with(good.clone(), &zero_units)).contains("units"));
        assert!(message(&with(good[1..].to_vec(), &md)).contains("layers.0.weight is missing"));
        let wrong_dtype = vec![
            (
                "layers.0.weight",
                Dtype::F64,
                vec![2, 1],
                le_bytes([0.0f32; 4].into_iter()),
            ),
            good[1].clone(),
        ];
        assert!(message(&with(wrong_dtype, &md)).contains("dtype"));
        let wrong_shape = vec![
            ("layers.0.weight", Dtype::F32, vec![1, 2], w([1.0, 2.0])),
            good[1].clone(),
        ];
        assert!(message(&with(wrong_shape, &md)).contains("shape"));
        let nan = vec![
            (
                "layers.0.weight",
                Dtype::F32,
                vec![2, 1],
                w([1.0, f32::NAN]),
            ),
            good[1].clone(),
        ];
        assert!(message(&with(nan, &md)).contains("non-finite"));
        let inf = vec![
            good[0].clone(),
            (
                "layers.0.bias",
                Dtype::F32,
                vec![1],
                le_bytes([f32::INFINITY].into_iter()),
            ),
        ];
        assert!(message(&with(inf, &md)).contains("non-finite"));
        let mut extra = good.clone();
        extra.push(("stray", Dtype::F32, vec![1], b.clone()));
        assert!(message(&with(extra, &md)).contains("stray"));
        let v2 = [md[0], ("format_version", "2"), md[2]];
        assert!(message(&with(good.clone(), &v2)).contains("format_version"));
        let bad_trained = [md[0], md[1], md[2], ("trained", "yes")];
        assert!(message(&with(good, &bad_trained)).contains("trained"));
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            // Random bytes are never a model file; the answer is an error naming the file.
            let err = decode(&bytes).expect_err("random bytes are not a kiln model");
            proptest::prop_assert!(err.0.iter().all(|fe| fe.field == "file"));
        }

        #[test]
        fn decoding_a_model_file_with_any_byte_changed_never_panics(pos in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
            let mut bytes = encode(&sample_file()).expect("encodes");
            let i = pos % bytes.len();
            bytes[i] = byte;
            if let Err(e) = decode(&bytes) {
                proptest::prop_assert!(e.0.iter().all(|fe| fe.field == "file"));
            }
        }
    }
    /// A trained CNN keeps its weights, running statistics and predictions through
    /// the model file, under PyTorch's names and layouts.
    #[test]
    fn a_cnn_survives_the_model_file_with_its_running_statistics() {
        use kiln_nn::layers::Layer;
        use kiln_nn::train::optim::{Adam, OptimizerConfig};
        use kiln_nn::{FitConfig, Loss, Regularization, Schedule, fit};
        let (x, y) = kiln_nn::datagen::bars(64, 5);
        let arch: Architecture = serde_json::from_str(
            r#"{"input_shape": [1, 8, 8], "layers": [
                {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": "same"},
                {"type": "batch_norm", "activation": "relu"},
                {"type": "max_pool2d", "pool_size": 2},
                {"type": "flatten"},
                {"type": "dense", "units": 2, "activation": "softmax"}]}"#,
        )
        .expect("parses");
        let mut model = Sequential::new(&arch, 1);
        let cfg = FitConfig {
            epochs: 1,
            batch_size: 16,
            optimizer: OptimizerConfig::Adam(Adam {
                lr: 0.01,
                ..Adam::default()
            }),
            schedule: Schedule::Constant,
            loss: Loss::CategoricalCrossentropy,
            regularization: Regularization::default(),
            validation_split: 0.0,
            early_stopping: None,
            seed: 1,
            task: Task::Multiclass,
        };
        fit(&mut model, x.view(), y.view(), &cfg, &mut |_| {}, &|| false).expect("trains");
        let file = ModelFile {
            meta: ModelMeta::new(model.architecture().clone()),
            model: model.clone(),
        };
        let bytes = encode(&file).expect("encodes");
        let back = crate::model::read(&bytes).expect("decodes");
        assert_eq!(back.model.snapshot(), model.snapshot());
        let (Layer::BatchNorm(a), Layer::BatchNorm(b)) =
            (&back.model.layers()[1], &model.layers()[1])
        else {
            panic!("batch norms")
        };
        assert_eq!(
            (&a.running_mean, &a.running_var),
            (&b.running_mean, &b.running_var)
        );
        assert_eq!(back.model.predict(x.view()), model.predict(x.view()));
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        assert_eq!(
            st.tensor("layers.0.weight").expect("w").shape(),
            &[4, 1, 3, 3]
        );
        assert_eq!(st.tensor("layers.1.running_var").expect("rv").shape(), &[4]);
        assert_eq!(
            st.tensor("layers.4.weight").expect("dense").shape(),
            &[64, 2]
        );
    }
}
