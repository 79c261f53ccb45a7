//! Learning-rate schedules, evaluated once per epoch (`epoch` is 0-based).
//!
//! * `constant`: `lr`.
//! * `step`: `lr · γ^⌊epoch / step_size⌋` (PyTorch `StepLR`).
//! * `cosine`: `min_lr + ½(lr − min_lr)(1 + cos(π·min(epoch, T)/T))` (PyTorch `CosineAnnealingLR` without restarts).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    Step { step_size: u32, gamma: f32 },
    Cosine { t_max: u32, min_lr: f32 },
}

impl Schedule {
    pub fn lr_at(&self, base_lr: f32, epoch: u32) -> f32 {
        match *self {
            Schedule::Constant => base_lr,
            Schedule::Step { step_size, gamma } => {
                let k = epoch / step_size.max(1);
                base_lr * gamma.powi(k.min(i32::MAX as u32) as i32)
            }
            Schedule::Cosine { t_max, min_lr } => {
                let t_max = t_max.max(1);
                let progress = epoch.min(t_max) as f64 / t_max as f64;
                let cos = (std::f64::consts::PI * progress).cos();
                (min_lr as f64 + 0.5 * (base_lr as f64 - min_lr as f64) * (1.0 + cos)) as f32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_give_their_documented_values_at_given_epochs() {
        assert_eq!(Schedule::Constant.lr_at(0.1, 57), 0.1);
        let step = Schedule::Step {
            step_size: 3,
            gamma: 0.5,
        };
        assert_eq!(step.lr_at(0.8, 0), 0.8);
        assert_eq!(step.lr_at(0.8, 2), 0.8);
        assert_eq!(step.lr_at(0.8, 3), 0.4);
        assert_eq!(step.lr_at(0.8, 7), 0.2);
        let cos = Schedule::Cosine {
            t_max: 10,
            min_lr: 0.0,
        };
        assert!((cos.lr_at(1.0, 0) - 1.0).abs() < 1e-7);
        assert!((cos.lr_at(1.0, 5) - 0.5).abs() < 1e-7);
        assert!(cos.lr_at(1.0, 10).abs() < 1e-7);
        assert!(cos.lr_at(1.0, 20).abs() < 1e-7);
        // epoch 2 of 10: 0.5·(1 + cos(0.2π)) = 0.904508
        assert!((cos.lr_at(1.0, 2) - 0.904_508).abs() < 1e-6);
        let floor = Schedule::Cosine {
            t_max: 4,
            min_lr: 0.1,
        };
        assert!((floor.lr_at(0.5, 4) - 0.1).abs() < 1e-7);
    }
}
