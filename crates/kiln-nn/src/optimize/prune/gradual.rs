//! Pruning while fine-tuning: [`StepHook`]s that tighten masks along a
//! [`PruneSchedule`], so the network adapts to each cut before the next one.
//!
//! Masks are set in [`StepHook::before_update`]; the optimizer step that
//! follows re-applies them, so after a pruning step the model holds exactly the
//! scheduled sparsity. Steps that prune nothing cost one comparison.

use std::collections::BTreeMap;

use ndarray::{Array2, Axis};

use super::magnitude::{MagnitudeConfig, Scope, magnitude_masks, prunable_layers, set_masks};
use super::neurons::{NeuronConfig, UnitCriterion, choose_keep, hidden_layers, norm_scores};
use super::schedule::{PruneSchedule, is_pruning_step, polynomial_sparsity};
use crate::layers::{Layer, UnsupportedLayer};
use crate::model::Sequential;
use crate::train::trainer::StepHook;

/// When masks are due and how far along the ramp they are; records each event.
#[derive(Debug, Clone)]
struct Pace {
    schedule: PruneSchedule,
    final_: f32,
    current: f32,
    events: Vec<(u64, f32)>,
}

impl Pace {
    fn new(schedule: PruneSchedule, final_: f32) -> Self {
        Self {
            schedule,
            final_,
            current: 0.0,
            events: Vec::new(),
        }
    }

    /// `(sparsity, progress)` when `step` is a pruning step. Progress (in
    /// `[0, 1]`) is `s_t / s_f` and scales the per-layer overrides; with
    /// `s_f = 0` it is the bare cubic ramp from 0 to 1.
    fn due(&self, step: u64) -> Option<(f32, f32)> {
        match self.schedule {
            PruneSchedule::OneShot => (step == 0).then_some((self.final_, 1.0)),
            PruneSchedule::Polynomial {
                initial_sparsity,
                begin_step,
                frequency,
                pruning_steps,
            } => {
                if !is_pruning_step(begin_step, frequency, pruning_steps, step) {
                    return None;
                }
                let ramp = |from, to| {
                    polynomial_sparsity(from, to, begin_step, frequency, pruning_steps, step)
                };
                let s = ramp(initial_sparsity, self.final_);
                let progress = if self.final_ > 0.0 {
                    s / self.final_
                } else {
                    ramp(0.0, 1.0)
                };
                Some((s, progress.clamp(0.0, 1.0)))
            }
        }
    }

    fn record(&mut self, step: u64, sparsity: f32) {
        self.current = sparsity;
        self.events.push((step, sparsity));
    }
}

/// Overrides scaled by the ramp's progress: `s_layer,t = override · s_t / s_f`.
fn scaled(overrides: &BTreeMap<usize, f32>, progress: f32) -> BTreeMap<usize, f32> {
    overrides.iter().map(|(&l, &s)| (l, s * progress)).collect()
}

/// Gradual unstructured magnitude pruning (Zhu & Gupta 2017): at each pruning
/// step, the weights of smallest `|w|` are masked up to the scheduled sparsity.
/// Masks only grow, since masked weights rank first.
#[derive(Debug, Clone)]
pub struct GradualMagnitude {
    cfg: MagnitudeConfig,
    pace: Pace,
}

impl GradualMagnitude {
    /// `cfg.sparsity` is the final sparsity; `OneShot` prunes to it at step 0.
    /// Refuses a `model` with a layer kind magnitude pruning does not know, so
    /// the hook, which cannot fail mid-training, never meets one.
    pub fn new(
        model: &Sequential,
        cfg: MagnitudeConfig,
        schedule: PruneSchedule,
    ) -> Result<Self, UnsupportedLayer> {
        prunable_layers(model, &cfg.overrides)?;
        let pace = Pace::new(schedule, cfg.sparsity);
        Ok(Self { cfg, pace })
    }

    /// The global sparsity of the last pruning event (0 before the first).
    pub fn current_sparsity(&self) -> f32 {
        self.pace.current
    }

    /// `(optimizer step, sparsity)` of every pruning event so far.
    pub fn events(&self) -> &[(u64, f32)] {
        &self.pace.events
    }
}

impl StepHook for GradualMagnitude {
    fn before_update(&mut self, step: u64, model: &mut Sequential) {
        let Some((sparsity, progress)) = self.pace.due(step) else {
            return;
        };
        let cfg = MagnitudeConfig {
            sparsity,
            scope: self.cfg.scope,
            overrides: scaled(&self.cfg.overrides, progress),
        };
        // `new` checked the model's layer kinds, and training does not change them.
        if let Ok(masks) = magnitude_masks(model, &cfg) {
            set_masks(model, &masks);
        }
        self.pace.record(step, sparsity);
    }
}

/// Gradual structured pruning: at each pruning step, whole hidden units (their
/// incoming weight column and their bias) are masked up to the scheduled
/// fraction of units. Masked units rank first, so the set only grows, and
/// [`super::remove_units`] with [`Self::kept_units`] afterwards turns the masked
/// model into a smaller dense one with the same outputs (a masked unit outputs
/// the constant `act(0)`, folded into the next layer's bias).
///
/// Scores come from the weights alone: [`UnitCriterion::Activation`] would need
/// a pass over data at every pruning step, so inside the hook it falls back to
/// [`UnitCriterion::L2`]. A fraction that would remove every unit of a layer
/// keeps that layer's best unit; check the config with
/// [`super::select_units`] first to report it as an error instead.
#[derive(Debug, Clone)]
pub struct GradualNeurons {
    cfg: NeuronConfig,
    pace: Pace,
}

impl GradualNeurons {
    /// `cfg.sparsity` is the final fraction of units; `OneShot` masks at step 0.
    /// Refuses a `model` with a layer kind neuron pruning does not know.
    pub fn new(
        model: &Sequential,
        cfg: NeuronConfig,
        schedule: PruneSchedule,
    ) -> Result<Self, UnsupportedLayer> {
        hidden_layers(model)?;
        let pace = Pace::new(schedule, cfg.sparsity);
        Ok(Self { cfg, pace })
    }

    /// The global fraction of units masked at the last pruning event.
    pub fn current_sparsity(&self) -> f32 {
        self.pace.current
    }

    /// `(optimizer step, fraction)` of every pruning event so far.
    pub fn events(&self) -> &[(u64, f32)] {
        &self.pace.events
    }

    /// The units each hidden layer's weight mask keeps (every unit of an
    /// unmasked layer), ready for [`super::remove_units`].
    pub fn kept_units(&self, model: &Sequential) -> Vec<(usize, Vec<usize>)> {
        // Empty only for a layer kind `new` refused, so never in practice.
        hidden_layers(model)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| {
                let d = model.layers().get(l).and_then(Layer::as_dense)?;
                let units = match d.weight.mask_matrix() {
                    Some(m) => m
                        .axis_iter(Axis(1))
                        .enumerate()
                        .filter_map(|(j, col)| col.iter().any(|&v| v != 0.0).then_some(j))
                        .collect(),
                    None => (0..d.units()).collect(),
                };
                Some((l, units))
            })
            .collect()
    }
}

impl StepHook for GradualNeurons {
    fn before_update(&mut self, step: u64, model: &mut Sequential) {
        let Some((sparsity, progress)) = self.pace.due(step) else {
            return;
        };
        let criterion = match self.cfg.criterion {
            UnitCriterion::L1 => UnitCriterion::L1,
            UnitCriterion::L2 | UnitCriterion::Activation => UnitCriterion::L2,
        };
        let scored: Vec<_> = hidden_layers(model)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|l| {
                let d = model.layers().get(l).and_then(Layer::as_dense)?;
                Some((l, norm_scores(d, criterion)))
            })
            .collect();
        let (scope, overrides) = (self.cfg.scope, &self.cfg.overrides);
        let alone = |l: usize| {
            overrides
                .get(&l)
                .map(|s| s * progress)
                .or((scope == Scope::PerLayer).then_some(sparsity))
        };
        // Not strict: a layer that would empty keeps its best unit, so this cannot fail.
        let Ok(keep) = choose_keep(model, &scored, sparsity, alone, false) else {
            return;
        };
        for (l, units) in keep {
            if let Some(d) = model.layers_mut().get_mut(l).and_then(Layer::as_dense_mut) {
                let mut wm = Array2::zeros(d.weight.matrix().raw_dim());
                let mut bm = Array2::zeros((1, d.units()));
                for &j in &units {
                    wm.column_mut(j).fill(1.0);
                    bm[(0, j)] = 1.0;
                }
                d.weight.set_mask(wm);
                d.weight.apply_mask();
                if let Some(b) = &mut d.bias {
                    b.set_mask(bm);
                    b.apply_mask();
                }
            }
        }
        self.pace.record(step, sparsity);
    }
}
