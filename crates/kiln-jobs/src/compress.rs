//! The compress job: Deep Compression's weight sharing and coding of a (pruned)
//! model into kiln's compressed artifact (see [`kiln_formats::compressed`]).
//!
//! Each dense layer's non-zero weights are clustered into `2^bits` shared values
//! (k-means); optionally the centroids are fine-tuned with the summed gradients
//! of their members; then positions, codes and codebooks are written in the
//! smallest sparse layout per layer and entropy coded. The produced model's file
//! *is* the artifact: it downloads as such, uploads again, and evaluates and
//! predicts like any model. Before the job succeeds the artifact is decoded
//! again and its predictions compared with the model it was written from.

use serde::Serialize;

use super::params::{CentroidInit, CoderChoice, ValidCompressParams};
use super::snapshot::score;
use super::stage::{self, After, Encoding, OptimizationStage, Reported, StageContext, Transformed};
use super::tuning::fine_tune;
use super::{JobContext, JobError, JobInputs, JobOutput};
use kiln_formats::compressed::Coder;
use kiln_nn::optimize::share::{CentroidTuner, CodebookInit, share_weights};

fn coders(choice: CoderChoice) -> Vec<Coder> {
    match choice {
        CoderChoice::Auto => vec![Coder::Huffman, Coder::Zstd],
        CoderChoice::Huffman => vec![Coder::Huffman],
        CoderChoice::Zstd => vec![Coder::Zstd],
        CoderChoice::None => vec![Coder::None],
    }
}

/// The compress job as an [`OptimizationStage`]; the template writes the artifact
/// ([`Encoding::Shared`]), reads it back and checks it predicts the same.
pub struct CompressStage;

/// The compress job's own report fields (the coder and layouts come from the template).
#[derive(Serialize)]
pub struct CompressReport {
    bits: u8,
    sharing_mse: f64,
    main_metric_after_sharing: f64,
    centroids_fine_tuned: bool,
}

impl OptimizationStage for CompressStage {
    type Params = ValidCompressParams;
    type Done = CompressReport;
    type Report = CompressReport;
    const PREFIX: &'static str = "compressed";
    const NOUN: &'static str = "compressed";

    fn transform(
        &self,
        p: &ValidCompressParams,
        cx: &StageContext<'_>,
    ) -> Result<Transformed<CompressReport>, JobError> {
        let init = match p.init {
            CentroidInit::Linear => CodebookInit::Linear,
            CentroidInit::Density => CodebookInit::Density,
        };
        let mut model = cx.inputs.model.model.clone();
        let mut shared = share_weights(&model, p.bits, init)?;
        let sharing_mse = shared.reconstruction_error(&model);
        shared.apply(&mut model);
        let shared_metric = score(&model, cx.data).main_metric();
        if let Some(ft) = &p.fine_tune {
            let mut tuner = CentroidTuner::new(shared, ft.optimizer.to_config().lr());
            let d = &cx.inputs.dataset;
            let range = cx.progress_range((0.0, 0.95));
            fine_tune(&mut model, d, ft, &mut tuner, cx.ctx, range)?;
            shared = tuner.into_shared();
            shared.apply(&mut model);
        }
        Ok(Transformed {
            model,
            encoding: Encoding::Shared {
                shared,
                bits: p.bits,
                coders: coders(p.coder),
            },
            done: CompressReport {
                bits: p.bits,
                sharing_mse,
                main_metric_after_sharing: shared_metric,
                centroids_fine_tuned: p.fine_tune.is_some(),
            },
        })
    }

    fn report(
        &self,
        _p: &ValidCompressParams,
        done: CompressReport,
        _after: &After<'_>,
    ) -> Result<Reported<CompressReport>, JobError> {
        Ok(done.into())
    }
}

pub fn run(inputs: JobInputs, ctx: &dyn JobContext) -> Result<JobOutput, JobError> {
    stage::run(&CompressStage, inputs, ctx)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::JobKind;
    use crate::fixtures::{TestCtx, accepted, arch, blobs};
    use kiln_formats::model_file::{self, ModelFile};
    use kiln_nn::kernels::sparse::{Choice, compile_with};
    use kiln_nn::optimize::prune::{MagnitudeConfig, Scope, magnitude_masks, set_masks};

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
        let masks = magnitude_masks(&model.model, &cfg).expect("dense");
        set_masks(&mut model.model, &masks);
        let model_bytes = model_file::encode(&model).expect("encodes").len();
        accepted(
            JobKind::Compress,
            JobInputs {
                model,
                model_bytes,
                dataset: blobs(150, 6, 4),
                eval_dataset: None,
                params,
                model_id: uuid::Uuid::nil(),
                job_id: uuid::Uuid::nil(),
                models: Default::default(),
            },
        )
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
        let file = kiln_formats::model::read(&produced.file).expect("the artifact decodes");
        assert_eq!(file.meta.dtype, "shared3");
        // At most 2^3 distinct non-zero values per layer, zeros where the mask was.
        for ((_, d), (_, o)) in file.model.dense_layers().zip(original.dense_layers()) {
            let mut distinct: Vec<u32> = d
                .weight
                .matrix()
                .iter()
                .filter(|v| **v != 0.0)
                .map(|v| v.to_bits())
                .collect();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(distinct.len() <= 8, "{} shared values", distinct.len());
            for (w, o) in d.weight.matrix().iter().zip(o.weight.matrix().iter()) {
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
