//! The skeleton every optimization job (prune, quantize, compress, compact, distill)
//! runs, so the jobs cannot drift apart again:
//!
//! params → progress 0 → evaluation data → before snapshot → progress 0.1 →
//! **transform** (the job's own work, progress 0.1‥0.85) → cancel check → encode →
//! round-trip check → progress 0.9 → after snapshot (of the model as stored, served as
//! deployed) → **report** → output, progress 1.
//!
//! A job supplies only an [`OptimizationStage`]: its params, its transform and its own
//! report fields; the template owns the snapshots, the encoding ([`Encoding`]), the
//! round-trip check, `compression_ratio` and the progress sub-range.
//!
//! Round-trip policy: the stored bytes are decoded and the decoded model, in the form
//! it is served (int8 network, or float network), must predict *exactly* what the
//! built model predicts on up to [`ROUNDTRIP_ROWS`] evaluation rows (tolerance 0):
//! every encoding stores the very f32 values (or int8 codes and scales) it was given,
//! so any difference is a bug in a writer or a reader, never rounding.
//!
//! A future `pipeline` job is a fold over stages: take the before snapshot once, fold
//! `transform` over the stages (each stage's `Transformed::model` is the next one's
//! input, each stage's `Done` kept for its report), encode the last stage's
//! [`Encoding`], and take the after snapshot once; each stage's `report` then runs
//! against the same [`After`], and the reports go side by side under the stage names.

use ndarray::{Array2, ArrayView2, s};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::derived::{meta_for, produced};
use super::report::{EvaluationReport, ModelReport, to_map};
use super::snapshot::{Snapshot, evaluation_data, score_keeping_outputs};
use super::{JobContext, JobError, JobInputs, JobOutput};
use kiln_formats::compressed::{self, Coder, LayerLayout};
use kiln_formats::model_file::{self, ModelFile};
use kiln_formats::quantized::Quantization;
use kiln_formats::source::Source;
use kiln_nn::Sequential;
use kiln_nn::data::{Dataset, Task};
use kiln_nn::measure::evaluation::{Evaluation, Head, evaluate_predictor};
use kiln_nn::optimize::quant::kernel;
use kiln_nn::optimize::quant::qmodel::QuantizedModel;
use kiln_nn::optimize::share::SharedWeights;
use kiln_nn::validation::Invalid;

/// Rows on which the stored model must predict what the built one does.
pub const ROUNDTRIP_ROWS: usize = 256;

/// The share of the progress bar a stage's transform moves through.
const TRANSFORM_PROGRESS: (f64, f64) = (0.1, 0.85);

/// One optimization job kind: what the template cannot know.
pub trait OptimizationStage {
    /// The job's checked parameters, as stored (normalised) when the job was accepted.
    type Params: DeserializeOwned;
    /// What the transform hands on to the report (timings, events, …).
    type Done;
    /// The job's own fields of `result.metrics`, beside the template's.
    type Report: Serialize;
    /// The produced model is named `{PREFIX}-{parent id prefix}`.
    const PREFIX: &'static str;
    /// The produced model in messages: "could not write the {NOUN} model".
    const NOUN: &'static str;

    /// The stored params, read back once (see [`JobInputs::params`]).
    fn params(&self, inputs: &JobInputs) -> Result<Self::Params, Invalid> {
        inputs.params()
    }

    /// The job's work on a copy of the input model.
    fn transform(
        &self,
        p: &Self::Params,
        cx: &StageContext<'_>,
    ) -> Result<Transformed<Self::Done>, JobError>;

    /// The job's report fields, given the model as stored.
    fn report(
        &self,
        p: &Self::Params,
        done: Self::Done,
        after: &After<'_>,
    ) -> Result<Reported<Self::Report>, JobError>;
}

/// What a transform sees besides its params.
pub struct StageContext<'a> {
    pub inputs: &'a JobInputs,
    /// The rows every figure is measured on, and their name (`evaluated_on`).
    pub data: &'a Dataset,
    pub evaluated_on: &'static str,
    /// The input model's evaluation on `data` and its outputs there.
    pub before: &'a Evaluation,
    pub before_outputs: ArrayView2<'a, f32>,
    pub ctx: &'a dyn JobContext,
}

impl StageContext<'_> {
    /// The job's progress at `local` (0‥1) of the transform's share.
    pub fn progress_at(&self, local: f64) -> f64 {
        let (from, to) = TRANSFORM_PROGRESS;
        from + (to - from) * local.clamp(0.0, 1.0)
    }

    /// Reports progress at `local` of the transform's share.
    pub fn set_progress(&self, local: f64) {
        self.ctx.set_progress(self.progress_at(local));
    }

    /// The job's progress range for `local.0‥local.1` of the transform (for fine-tuning).
    pub fn progress_range(&self, local: (f64, f64)) -> (f64, f64) {
        (self.progress_at(local.0), self.progress_at(local.1))
    }

    pub fn check_cancelled(&self) -> Result<(), JobError> {
        if self.ctx.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        Ok(())
    }
}

/// A transform's result: the model to store, how to store it, and what the report needs.
pub struct Transformed<D> {
    /// The float network to store (for int8, the network of its dequantized weights).
    pub model: Sequential,
    pub encoding: Encoding,
    pub done: D,
}

/// How the template writes the produced model.
pub enum Encoding {
    /// A kiln model file with f32 weights (CSR where smaller).
    Float,
    /// A kiln model file with the int8 layers of `built` beside its int8-grid weights.
    Int8(Box<QuantizedModel>),
    /// Deep Compression's artifact: `shared` coded with the smallest of `coders`.
    Shared {
        shared: SharedWeights,
        bits: u8,
        coders: Vec<Coder>,
    },
}

/// The produced model as stored, for a stage's report.
pub struct After<'a> {
    pub inputs: &'a JobInputs,
    pub data: &'a Dataset,
    /// The stored model, decoded.
    pub file: &'a ModelFile,
    pub size_bytes: usize,
    pub snapshot: &'a Snapshot,
    pub eval: &'a Evaluation,
    /// The float network's outputs on `data` (`None` for an int8 model).
    pub outputs: Option<&'a Array2<f32>>,
    pub before: &'a Snapshot,
    pub before_eval: &'a Evaluation,
    pub before_outputs: ArrayView2<'a, f32>,
}

/// A stage's report: its metrics fields and further top-level `result` sections.
pub struct Reported<R> {
    pub metrics: R,
    pub sections: Map<String, Value>,
}

impl<R> From<R> for Reported<R> {
    fn from(metrics: R) -> Self {
        Self {
            metrics,
            sections: Map::new(),
        }
    }
}

/// `result.before`: the input model's snapshot and where it came from.
#[derive(Serialize)]
struct BeforeReport<'a> {
    #[serde(flatten)]
    snapshot: &'a Snapshot,
    dtype: &'a str,
    trained: bool,
    lineage: Lineage,
}

/// The parent model and job recorded in a model file.
#[derive(Debug, Clone, Serialize)]
pub struct Lineage {
    pub parent_id: Option<String>,
    pub job_id: Option<String>,
}

impl Lineage {
    pub fn of(file: &ModelFile) -> Self {
        Self {
            parent_id: file.meta.parent_id.clone(),
            job_id: file.meta.job_id.clone(),
        }
    }
}

/// `result.metrics`: the template's fields, then the stage's.
#[derive(Serialize)]
struct AfterReport<'a, R> {
    #[serde(flatten)]
    snapshot: &'a Snapshot,
    dtype: &'a str,
    evaluated_on: &'static str,
    /// Input file bytes over produced file bytes.
    compression_ratio: f64,
    roundtrip_max_abs_diff: f32,
    #[serde(flatten)]
    encoded: &'a EncodedFacts,
    #[serde(flatten)]
    stage: &'a R,
}

/// What the encoding chose, for the report.
#[derive(Serialize)]
#[serde(untagged)]
enum EncodedFacts {
    Float {},
    Int8 {
        /// The int8 kernel path this CPU runs.
        isa: &'static str,
    },
    Shared {
        coder: &'static str,
        /// Bytes of the artifact under each coder tried.
        coder_sizes: Map<String, Value>,
        layouts: Vec<LayerLayout>,
        dense_f32_bytes: u64,
        compression_ratio_vs_dense: f64,
    },
}

/// The stored model and what it is compared against.
struct Encoded {
    bytes: Vec<u8>,
    /// The bytes decoded again.
    back: ModelFile,
    dtype: String,
    facts: EncodedFacts,
    /// The int8 network as built (`None`: the float model is what was built).
    built_int8: Option<Box<QuantizedModel>>,
}

/// Runs `stage` as a job.
pub fn run<S: OptimizationStage>(
    stage: &S,
    inputs: JobInputs,
    ctx: &dyn JobContext,
) -> Result<JobOutput, JobError> {
    let p = stage.params(&inputs)?;
    ctx.set_progress(0.0);
    let (data, evaluated_on) = evaluation_data(&inputs.dataset, inputs.eval_dataset.as_ref());
    let (before_eval, before_outputs) = score_keeping_outputs(&inputs.model.model, data);
    let before = Snapshot::scored(&inputs.model.model, inputs.model_bytes, data, &before_eval);
    ctx.set_progress(TRANSFORM_PROGRESS.0);

    let cx = StageContext {
        inputs: &inputs,
        data,
        evaluated_on,
        before: &before_eval,
        before_outputs: before_outputs.view(),
        ctx,
    };
    let t = stage.transform(&p, &cx)?;
    cx.check_cancelled()?;
    let built = t.model.clone();
    let enc = encode::<S>(t.model, t.encoding, &inputs)?;
    let roundtrip_max_abs_diff = roundtrip::<S>(&built, &enc, data.x.view())?;
    ctx.set_progress(0.9);

    let (snapshot, eval, outputs) = after_snapshot::<S>(&enc, data, evaluated_on)?;
    let after = After {
        inputs: &inputs,
        data,
        file: &enc.back,
        size_bytes: enc.bytes.len(),
        snapshot: &snapshot,
        eval: &eval,
        outputs: outputs.as_ref(),
        before: &before,
        before_eval: &before_eval,
        before_outputs: before_outputs.view(),
    };
    let reported = stage.report(&p, t.done, &after)?;
    let metrics = to_map(&AfterReport {
        snapshot: &snapshot,
        dtype: &enc.dtype,
        evaluated_on,
        compression_ratio: inputs.model_bytes as f64 / enc.bytes.len().max(1) as f64,
        roundtrip_max_abs_diff,
        encoded: &enc.facts,
        stage: &reported.metrics,
    });
    let before = to_map(&BeforeReport {
        snapshot: &before,
        dtype: &inputs.model.meta.dtype,
        trained: inputs.model.meta.trained,
        lineage: Lineage::of(&inputs.model),
    });
    ctx.set_progress(1.0);
    let Encoded {
        bytes, back, dtype, ..
    } = enc;
    Ok(JobOutput {
        model: Some(produced(
            S::PREFIX,
            inputs.model_id,
            &back.model,
            bytes,
            &dtype,
            back.meta.task,
            Source::read(&back.meta),
        )),
        metrics,
        before: Some(before),
        sections: reported.sections,
        ..JobOutput::default()
    })
}

fn write_failed<S: OptimizationStage>(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(format!("could not write the {} model: {e}", S::NOUN))
}

fn encode<S: OptimizationStage>(
    model: Sequential,
    encoding: Encoding,
    inputs: &JobInputs,
) -> Result<Encoded, JobError> {
    let mut meta = meta_for(&model, inputs);
    let read_back = |bytes: &[u8]| {
        kiln_formats::model::read(bytes)
            .map_err(|e| JobError::Failed(format!("the {} model does not read back: {e}", S::NOUN)))
    };
    match encoding {
        Encoding::Float => {
            let file = ModelFile { model, meta };
            let bytes = model_file::encode(&file).map_err(write_failed::<S>)?;
            Ok(Encoded {
                back: read_back(&bytes)?,
                bytes,
                dtype: "f32".into(),
                facts: EncodedFacts::Float {},
                built_int8: None,
            })
        }
        Encoding::Int8(q) => {
            meta.dtype = "int8".into();
            meta.quantization = Some(Quantization {
                config: q.config().clone(),
                layers: q.layers().to_vec(),
            });
            let file = ModelFile { model, meta };
            let bytes = model_file::encode(&file).map_err(write_failed::<S>)?;
            Ok(Encoded {
                back: read_back(&bytes)?,
                bytes,
                dtype: "int8".into(),
                facts: EncodedFacts::Int8 {
                    isa: kernel::detected().name(),
                },
                built_int8: Some(q),
            })
        }
        Encoding::Shared {
            shared,
            bits,
            coders,
        } => {
            let file = ModelFile { model, meta };
            let mut coder_sizes = Map::new();
            let mut best: Option<(Coder, Vec<u8>)> = None;
            for coder in coders {
                let bytes = compressed::encode(&file, &shared, coder).map_err(write_failed::<S>)?;
                coder_sizes.insert(coder.as_str().into(), bytes.len().into());
                if best.as_ref().is_none_or(|(_, b)| bytes.len() < b.len()) {
                    best = Some((coder, bytes));
                }
            }
            let Some((coder, bytes)) = best else {
                return Err(JobError::Failed("no entropy coder was tried".into()));
            };
            let (back, info) = compressed::decode(&bytes).map_err(|e| {
                JobError::Failed(format!("the {} model does not read back: {e}", S::NOUN))
            })?;
            let dense_f32_bytes = back.model.param_count() * 4;
            Ok(Encoded {
                facts: EncodedFacts::Shared {
                    coder: coder.as_str(),
                    coder_sizes,
                    layouts: info.layers,
                    dense_f32_bytes,
                    compression_ratio_vs_dense: dense_f32_bytes as f64 / bytes.len().max(1) as f64,
                },
                back,
                bytes,
                dtype: format!("shared{bits}"),
                built_int8: None,
            })
        }
    }
}

/// The round-trip check (see the module doc): the largest difference, which must be 0.
fn roundtrip<S: OptimizationStage>(
    built: &Sequential,
    enc: &Encoded,
    x: ArrayView2<f32>,
) -> Result<f32, JobError> {
    let sample = x.slice(s![..x.nrows().min(ROUNDTRIP_ROWS), ..]);
    let (expected, got) = match &enc.built_int8 {
        Some(q) => {
            let served = enc
                .back
                .int8()
                .ok_or_else(|| {
                    JobError::Failed(format!("the {} model lost its int8 layers", S::NOUN))
                })?
                .map_err(quant_failed)?;
            (q.predict(sample), served.predict(sample))
        }
        None => (built.predict(sample), enc.back.model.predict(sample)),
    };
    let max_diff = expected
        .iter()
        .zip(got.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    if max_diff > 0.0 || max_diff.is_nan() {
        return Err(JobError::Failed(format!(
            "the stored {} model predicts differently from the one built (max difference {max_diff})",
            S::NOUN
        )));
    }
    Ok(max_diff)
}

fn quant_failed(e: impl std::fmt::Display) -> JobError {
    JobError::Failed(format!("quantization failed: {e}"))
}

/// The stored model's snapshot, evaluated and timed in the form it is served.
fn after_snapshot<S: OptimizationStage>(
    enc: &Encoded,
    data: &Dataset,
    evaluated_on: &str,
) -> Result<(Snapshot, Evaluation, Option<Array2<f32>>), JobError> {
    let model = &enc.back.model;
    let (snapshot, eval, outputs) = match enc.back.int8() {
        Some(served) => {
            let served = served.map_err(quant_failed)?;
            let head = Head::new(model, data.task);
            let ev = evaluate_predictor(
                &served,
                head,
                data.x.view(),
                data.y.view(),
                data.classes,
                head.default_loss(),
                1024,
            );
            let snapshot = Snapshot {
                evaluation: EvaluationReport::of(&ev, data.task == Task::Multiclass),
                model: ModelReport::served(model, enc.bytes.len(), &served, data.x.view()),
                ..Snapshot::scored_without_speed(model, enc.bytes.len(), data, &ev)
            };
            (snapshot, ev, None)
        }
        None => {
            let (ev, outputs) = score_keeping_outputs(model, data);
            let snapshot = Snapshot::scored(model, enc.bytes.len(), data, &ev);
            (snapshot, ev, Some(outputs))
        }
    };
    if !eval.loss.is_finite() {
        return Err(JobError::Failed(format!(
            "the {} model's loss on the {evaluated_on} data is {}; it diverged",
            S::NOUN,
            eval.loss
        )));
    }
    Ok((snapshot, eval, outputs))
}
