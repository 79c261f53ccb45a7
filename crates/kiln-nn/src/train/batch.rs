//! Data ops for training: seeded shuffling, the validation split, mini-batches.
//!
//! Shuffles are Fisher–Yates driven by ChaCha8, so the same seed gives the same
//! order on every machine.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

/// Fisher–Yates shuffle in place.
pub fn shuffle(idx: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..idx.len()).rev() {
        let j = rng.random_range(0..=i);
        idx.swap(i, j);
    }
}

/// Number of validation rows for `rows` and a `fraction` in `[0, 1)`: `⌊rows·fraction⌋`.
pub fn validation_rows(rows: usize, fraction: f64) -> usize {
    if fraction.is_nan() || fraction <= 0.0 {
        return 0;
    }
    ((rows as f64 * fraction).floor() as usize).min(rows)
}

/// Splits `0..rows` into `(train, validation)` after a seeded shuffle, so a file
/// sorted by class still gives a representative validation set.
pub fn train_validation_split(
    rows: usize,
    fraction: f64,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..rows).collect();
    let n_val = validation_rows(rows, fraction);
    if n_val == 0 {
        return (idx, Vec::new());
    }
    shuffle(&mut idx, rng);
    let val = idx.split_off(rows - n_val);
    (idx, val)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_split_is_a_seeded_partition_of_all_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (train, val) = train_validation_split(100, 0.25, &mut rng);
        assert_eq!((train.len(), val.len()), (75, 25));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let mut rng2 = ChaCha8Rng::seed_from_u64(4);
        assert_eq!(train_validation_split(100, 0.25, &mut rng2).1, val);
        assert_eq!(validation_rows(10, 0.0), 0);
    }
}
