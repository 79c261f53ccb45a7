//! The compress job: Deep Compression's weight sharing and coding of a (pruned)
//! model into kiln's compressed artifact (see [`crate::formats::compressed`]).
//!
//! Each dense layer's non-zero weights are clustered into `2^bits` shared values
//! (k-means); optionally the centroids are fine-tuned with the summed gradients
//! of their members; then positions, codes and codebooks are written in the
//! smallest sparse layout per layer and entropy coded. The produced model's file
//! *is* the artifact: it downloads as such, uploads again, and evaluates and
//! predicts like any model. Before the job succeeds the artifact is decoded
//! again and its predictions compared with the model it was written from.

use serde_json::{Value, json};

use super::derived::{meta_for, output};
use super::params::{CentroidInit, CoderChoice, validate_compress};
use super::snapshot::{evaluation_data, score, snapshot, snapshot_scored};
use super::tuning::fine_tune;
use super::{JobContext, JobError, JobInputs, JobOutput};
use crate::formats::compressed::{self, Coder};
use crate::formats::model_file::ModelFile;
use crate::nn::share::{CentroidTuner, CodebookInit, share_weights};

/// Rows compared between the compressed artifact and the model it encodes.
const ROUNDTRIP_ROWS: usize = 256;

fn coders(choice: CoderChoice) -> Vec<Coder> {
    match choice {
        CoderChoice::Auto => vec![Coder::Huffman, Coder::Zstd],
        CoderChoice::Huffman => vec![Coder::Huffman],
        CoderChoice::Zstd => vec![Coder::Zstd],
        CoderChoice::None => vec![Coder::None],
    }
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    let p = inputs.validated(validate_compress)?;
    ctx.set_progress(0.0);
    let (data, evaluated_on) = evaluation_data(&inputs.dataset, inputs.eval_dataset.as_ref());
    let before = snapshot(&inputs.model.model, inputs.model_bytes, data);
    ctx.set_progress(0.1);

    let init = match p.init {
        CentroidInit::Linear => CodebookInit::Linear,
        CentroidInit::Density => CodebookInit::Density,
    };
    let mut model = inputs.model.model.clone();
    let mut shared = share_weights(&model, p.bits, init);
    let sharing_mse = shared.reconstruction_error(&model);
    shared.apply(&mut model);
    let shared_metric = score(&model, data).main_metric();
    if let Some(ft) = &p.fine_tune {
        let mut tuner = CentroidTuner::new(shared, ft.optimizer.to_config().lr());
        let d = &inputs.dataset;
        fine_tune(&mut model, d, ft, &mut tuner, ctx, (0.15, 0.8))?;
        shared = tuner.into_shared();
        shared.apply(&mut model);
    }
    if ctx.is_cancelled() {
        return Err(JobError::Cancelled);
    }

    let meta = meta_for(&model, &inputs);
    let file = ModelFile { model, meta };
    let mut sizes = serde_json::Map::new();
    let mut best: Option<(Coder, Vec<u8>)> = None;
    for coder in coders(p.coder) {
        let bytes = compressed::encode(&file, &shared, coder)
            .map_err(|e| JobError::Failed(format!("could not write the compressed model: {e}")))?;
        sizes.insert(coder.as_str().into(), json!(bytes.len()));
        if best.as_ref().is_none_or(|(_, b)| bytes.len() < b.len()) {
            best = Some((coder, bytes));
        }
    }
    let Some((coder, bytes)) = best else {
        return Err(JobError::Failed("no entropy coder was tried".into()));
    };

    // The artifact is what gets stored: read it back and check it predicts the same.
    let (decoded, info) = compressed::decode(&bytes)
        .map_err(|e| JobError::Failed(format!("the compressed model does not read back: {e}")))?;
    let rows = data.x.nrows().min(ROUNDTRIP_ROWS);
    let sample = data.x.slice(ndarray::s![..rows, ..]);
    let max_diff = file
        .model
        .predict(sample)
        .iter()
        .zip(decoded.model.predict(sample).iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    if max_diff > 1e-6 {
        return Err(JobError::Failed(format!(
            "the compressed model predicts differently from the model it encodes (max difference {max_diff})"
        )));
    }
    ctx.set_progress(0.9);

    let ev = score(&decoded.model, data);
    let mut metrics = snapshot_scored(&decoded.model, bytes.len(), data, &ev);
    let dense_bytes = decoded.model.param_count() * 4;
    metrics.insert("evaluated_on".into(), json!(evaluated_on));
    metrics.insert("bits".into(), json!(p.bits));
    metrics.insert("coder".into(), json!(coder.as_str()));
    metrics.insert("coder_sizes".into(), Value::Object(sizes));
    let layouts: Vec<Value> = info
        .layers
        .iter()
        .map(|l| {
            json!({"layer": l.layer, "layout": l.layout, "index_bits": l.index_bits,
                   "nonzero": l.nonzero, "bytes": l.bytes})
        })
        .collect();
    metrics.insert("layouts".into(), Value::Array(layouts));
    metrics.insert("sharing_mse".into(), json!(sharing_mse));
    metrics.insert("main_metric_after_sharing".into(), json!(shared_metric));
    metrics.insert("centroids_fine_tuned".into(), json!(p.fine_tune.is_some()));
    metrics.insert("roundtrip_max_abs_diff".into(), json!(max_diff));
    metrics.insert("dense_f32_bytes".into(), json!(dense_bytes));
    metrics.insert(
        "compression_ratio".into(),
        json!(inputs.model_bytes as f64 / bytes.len().max(1) as f64),
    );
    metrics.insert(
        "compression_ratio_vs_dense".into(),
        json!(dense_bytes as f64 / bytes.len().max(1) as f64),
    );
    ctx.set_progress(1.0);
    Ok(output(
        "compressed",
        &inputs,
        &decoded,
        bytes,
        &format!("shared{}", p.bits),
        metrics,
        before,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::formats::model_file;
    use crate::jobs::train::tests::{TestCtx, arch, blobs};
    use crate::nn::prune::{MagnitudeConfig, Scope, magnitude_masks, set_masks};
    use crate::nn::sparse::{Choice, compile_with};

    /// A model with its hidden layer pruned to 80 %, as a prune job would hand it over.
    fn pruned_inputs(params: Value) -> JobInputs {
        let a = arch(
            r#"{"input_dim": 6, "layers": [{"type": "dense", "units": 40, "activation": "relu"},
                {"type": "dense", "units": 1, "activation": "sigmoid"}]}"#,
        );
        let mut model = ModelFile::untrained(&a, 9);
        let cfg = MagnitudeConfig {
            sparsity: 0.8,
            scope: Scope::Global,
            overrides: Default::default(),
        };
        let masks = magnitude_masks(&model.model, &cfg);
        set_masks(&mut model.model, &masks);
        let model_bytes = model_file::encode(&model).expect("encodes").len();
        JobInputs {
            model,
            model_bytes,
            dataset: blobs(150, 6, 4),
            eval_dataset: None,
            params,
            model_id: uuid::Uuid::nil(),
            job_id: uuid::Uuid::nil(),
            models: Default::default(),
        }
    }

    #[test]
    fn the_artifact_reads_back_and_its_dense_sparse_and_compressed_forms_agree() {
        let inputs = pruned_inputs(json!({"bits": 3, "coder": "auto"}));
        let original = inputs.model.model.clone();
        let out = run(inputs, &TestCtx::default()).expect("compresses");
        let m = &out.metrics;
        assert_eq!(m["roundtrip_max_abs_diff"], json!(0.0));
        assert!(
            m["size_bytes"].as_u64() < out.before.as_ref().and_then(|b| b["size_bytes"].as_u64())
        );
        let produced = out.model.expect("a model");
        assert_eq!(produced.dtype, "shared3");
        assert_eq!(produced.nonzero_params, original.nonzero_params());
        let file = model_file::decode(&produced.file).expect("the artifact decodes");
        assert_eq!(file.meta.dtype, "shared3");
        // At most 2^3 distinct non-zero values per layer, zeros where the mask was.
        for ((_, d), (_, o)) in file.model.dense_layers().zip(original.dense_layers()) {
            let mut distinct: Vec<u32> = d
                .weight
                .value
                .iter()
                .filter(|v| **v != 0.0)
                .map(|v| v.to_bits())
                .collect();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(distinct.len() <= 8, "{} shared values", distinct.len());
            for (w, o) in d.weight.value.iter().zip(o.weight.value.iter()) {
                assert_eq!(*w == 0.0, *o == 0.0, "pruned positions stay pruned");
            }
        }
        let x = blobs(33, 6, 5).x;
        let plain = file.model.predict(x.view());
        for choice in [Choice::Dense, Choice::Sparse] {
            let y = compile_with(&file.model, choice).predict(x.view());
            for (a, b) in plain.iter().zip(y.iter()) {
                assert!((a - b).abs() < 1e-5, "{choice:?}: {a} vs {b}");
            }
        }
    }
}
