//! When to prune and how much: Zhu & Gupta (2017), "To prune, or not to prune".
//!
//! Sparsity rises from `s_i` to `s_f` over `n` pruning steps `Δt` apart, starting
//! at `t0`, along `s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³`: fast while many
//! redundant weights remain, slow near the end so fine-tuning can recover.

/// How a pruning hook spreads its work over fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PruneSchedule {
    /// Prune to the final sparsity once, at optimizer step 0, then fine-tune.
    OneShot,
    /// The polynomial ramp; the final sparsity comes from the pruning config.
    Polynomial {
        initial_sparsity: f32,
        begin_step: u64,
        frequency: u64,
        pruning_steps: u64,
    },
}

/// Sparsity scheduled for optimizer step `step`: `initial` before `begin_step`,
/// `final_` from `begin_step + pruning_steps·frequency` on, the cubic ramp between.
/// A frequency of 0 is read as 1, as in [`is_pruning_step`].
pub fn polynomial_sparsity(
    initial: f32,
    final_: f32,
    begin_step: u64,
    frequency: u64,
    pruning_steps: u64,
    step: u64,
) -> f32 {
    if step < begin_step {
        return initial;
    }
    let span = pruning_steps.saturating_mul(frequency.max(1));
    let elapsed = step - begin_step;
    if elapsed >= span {
        return final_;
    }
    // f64: step counts beyond 2^24 would lose precision in f32.
    let remaining = 1.0 - elapsed as f64 / span as f64;
    let (si, sf) = (initial as f64, final_ as f64);
    (sf + (si - sf) * remaining.powi(3)) as f32
}

/// Whether masks are recomputed at `step`: every `frequency` steps from
/// `begin_step` through `begin_step + pruning_steps·frequency`. A frequency of 0
/// is read as 1.
pub fn is_pruning_step(begin_step: u64, frequency: u64, pruning_steps: u64, step: u64) -> bool {
    let frequency = frequency.max(1);
    let end = begin_step.saturating_add(pruning_steps.saturating_mul(frequency));
    step >= begin_step && step <= end && (step - begin_step).is_multiple_of(frequency)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// s_i 0.1, s_f 0.9, t0 100, Δt 10, n 4 (ends at 140).
    fn s(step: u64) -> f32 {
        polynomial_sparsity(0.1, 0.9, 100, 10, 4, step)
    }

    #[test]
    fn the_ramp_follows_the_cubic_formula() {
        assert_eq!(s(0), 0.1);
        assert_eq!(s(99), 0.1);
        assert!((s(100) - 0.1).abs() < 1e-7);
        // t = 110: 0.9 − 0.8·(3/4)³ = 0.9 − 0.8·0.421875 = 0.5625
        assert!((s(110) - 0.5625).abs() < 1e-6, "{}", s(110));
        // t = 120: 0.9 − 0.8·(1/2)³ = 0.8
        assert!((s(120) - 0.8).abs() < 1e-6, "{}", s(120));
        // t = 125: 0.9 − 0.8·(3/8)³ = 0.9 − 0.8·0.052734375 = 0.8578125
        assert!((s(125) - 0.857_812_5).abs() < 1e-6, "{}", s(125));
        assert_eq!(s(140), 0.9);
        assert_eq!(s(10_000), 0.9);
    }

    #[test]
    fn pruning_steps_are_every_frequency_from_begin_to_end() {
        let on: Vec<u64> = (0..200)
            .filter(|&t| is_pruning_step(100, 10, 4, t))
            .collect();
        assert_eq!(on, vec![100, 110, 120, 130, 140]);
        assert!(!is_pruning_step(100, 10, 4, 105));
        assert!(!is_pruning_step(100, 10, 4, 150));
        // No ramp (n = 0): the single step t0.
        let once: Vec<u64> = (0..20).filter(|&t| is_pruning_step(3, 5, 0, t)).collect();
        assert_eq!(once, vec![3]);
        assert_eq!(polynomial_sparsity(0.2, 0.7, 3, 5, 0, 3), 0.7);
    }
}
