//! Optimizers: one file per rule, each a pure step `(value, grad, state) → value, state`.
//! [`Optimizer`] owns one state per parameter and walks the model's flat
//! parameter list, re-applying pruning masks after each step.

pub mod adam;
pub mod adamw;
pub mod momentum;
pub mod nesterov;
pub mod rmsprop;
pub mod sgd;

pub use adam::{Adam, AdamState};
pub use adamw::AdamW;
pub use momentum::{Momentum, MomentumState};
pub use nesterov::Nesterov;
pub use rmsprop::{RmsProp, RmsPropState};
pub use sgd::Sgd;

use crate::layers::param::Param;

/// Which rule and its hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerConfig {
    Sgd(Sgd),
    Momentum(Momentum),
    Nesterov(Nesterov),
    Adam(Adam),
    AdamW(AdamW),
    RmsProp(RmsProp),
}

impl OptimizerConfig {
    /// The base learning rate (before any schedule).
    pub fn lr(&self) -> f32 {
        match self {
            OptimizerConfig::Sgd(o) => o.lr,
            OptimizerConfig::Momentum(o) => o.lr,
            OptimizerConfig::Nesterov(o) => o.lr,
            OptimizerConfig::Adam(o) => o.lr,
            OptimizerConfig::AdamW(o) => o.adam.lr,
            OptimizerConfig::RmsProp(o) => o.lr,
        }
    }
}

#[derive(Debug, Clone)]
enum State {
    None,
    Momentum(MomentumState),
    Adam(AdamState),
    RmsProp(RmsPropState),
}

/// An optimizer with per-parameter state, created lazily on the first step.
#[derive(Debug, Clone)]
pub struct Optimizer {
    config: OptimizerConfig,
    states: Vec<State>,
    /// Steps taken so far.
    t: u64,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig) -> Self {
        Self {
            config,
            states: Vec::new(),
            t: 0,
        }
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    pub fn steps(&self) -> u64 {
        self.t
    }

    /// Updates every parameter from its `grad` with learning rate `lr`; the list
    /// must be the same parameters in the same order on every call.
    pub fn step(&mut self, params: Vec<&mut Param>, lr: f32) {
        self.t += 1;
        let t = self.t;
        if self.states.len() != params.len() {
            self.states = params
                .iter()
                .map(|p| match self.config {
                    OptimizerConfig::Sgd(_) => State::None,
                    OptimizerConfig::Momentum(_) | OptimizerConfig::Nesterov(_) => {
                        State::Momentum(MomentumState::new(p.matrix()))
                    }
                    OptimizerConfig::Adam(_) | OptimizerConfig::AdamW(_) => {
                        State::Adam(AdamState::new(p.matrix()))
                    }
                    OptimizerConfig::RmsProp(_) => State::RmsProp(RmsPropState::new(p.matrix())),
                })
                .collect();
        }
        for (p, state) in params.into_iter().zip(&mut self.states) {
            let (value, grad) = p.step_views();
            match (&self.config, state) {
                (OptimizerConfig::Sgd(_), _) => sgd::step(lr, value, grad),
                (OptimizerConfig::Momentum(o), State::Momentum(s)) => {
                    momentum::step(o.momentum, lr, value, grad, s)
                }
                (OptimizerConfig::Nesterov(o), State::Momentum(s)) => {
                    nesterov::step(o.momentum, lr, value, grad, s)
                }
                (OptimizerConfig::Adam(o), State::Adam(s)) => adam::step(o, lr, t, value, grad, s),
                (OptimizerConfig::AdamW(o), State::Adam(s)) => {
                    adamw::step(o, lr, t, value, grad, s)
                }
                (OptimizerConfig::RmsProp(o), State::RmsProp(s)) => {
                    rmsprop::step(o, lr, value, grad, s)
                }
                // States are built from the same config above, so this cannot happen.
                _ => {}
            }
            p.apply_mask();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn a_masked_weight_stays_zero_after_a_step() {
        let mut p = Param::new(array![[1.0f32, 2.0]]);
        p.set_mask(array![[1.0, 0.0]]);
        p.apply_mask();
        p.grad_matrix_mut().assign(&array![[0.5, -3.0]]);
        let mut opt = Optimizer::new(OptimizerConfig::Adam(Adam::default()));
        opt.step(vec![&mut p], 0.1);
        assert_eq!(p.matrix()[(0, 1)], 0.0);
        assert!(p.matrix()[(0, 0)] < 1.0);
        assert_eq!(opt.steps(), 1);
    }
}
