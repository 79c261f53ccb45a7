//! Classification and regression metrics (scikit-learn's definitions).
//!
//! * Confusion matrix rows are true classes, columns predicted classes.
//! * Precision/recall/F1 are 0 when their denominator is 0 (sklearn `zero_division=0`).
//!   Binary scores are for the positive class 1; macro scores are unweighted
//!   means over all classes.
//! * ROC AUC is the Mann–Whitney statistic with average ranks for tied scores,
//!   equal to sklearn's `roc_auc_score`; `None` when only one class is present.
//! * R² is `1 − SS_res/SS_tot`; with constant targets it is 1 for a perfect fit, else 0.

/// `k × k` counts, `m[true][predicted]`. Labels `>= k` are ignored.
pub fn confusion_matrix(truth: &[usize], pred: &[usize], k: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; k]; k];
    for (&t, &p) in truth.iter().zip(pred) {
        if t < k && p < k {
            m[t][p] += 1;
        }
    }
    m
}

pub fn accuracy(truth: &[usize], pred: &[usize]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let hits = truth.iter().zip(pred).filter(|(t, p)| t == p).count();
    hits as f64 / truth.len() as f64
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn f1_of(p: f64, r: f64) -> f64 {
    if p + r == 0.0 {
        0.0
    } else {
        2.0 * p * r / (p + r)
    }
}

/// Precision, recall and F1 of one class in a confusion matrix.
pub fn class_scores(m: &[Vec<u64>], class: usize) -> (f64, f64, f64) {
    let tp = m[class][class];
    let predicted: u64 = m.iter().map(|row| row[class]).sum();
    let actual: u64 = m[class].iter().sum();
    let p = ratio(tp, predicted);
    let r = ratio(tp, actual);
    (p, r, f1_of(p, r))
}

/// Unweighted means of per-class precision, recall and F1.
pub fn macro_scores(m: &[Vec<u64>]) -> (f64, f64, f64) {
    let k = m.len();
    if k == 0 {
        return (0.0, 0.0, 0.0);
    }
    let (mut p, mut r, mut f) = (0.0, 0.0, 0.0);
    for c in 0..k {
        let (pc, rc, fc) = class_scores(m, c);
        p += pc;
        r += rc;
        f += fc;
    }
    (p / k as f64, r / k as f64, f / k as f64)
}

/// ROC AUC of `scores` for `positive` labels; ties get average ranks.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let n = scores.len().min(positive.len());
    let n_pos = positive[..n].iter().filter(|p| **p).count();
    let n_neg = n - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // ranks i+1 ..= j+1 share their average
        let avg = (i + j + 2) as f64 / 2.0;
        for &o in &order[i..=j] {
            if positive[o] {
                rank_sum_pos += avg;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos as f64 * (n_pos as f64 + 1.0)) / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

pub fn mse(truth: &[f32], pred: &[f32]) -> f64 {
    mean(truth.iter().zip(pred).map(|(t, p)| {
        let d = (*t - *p) as f64;
        d * d
    }))
}

pub fn mae(truth: &[f32], pred: &[f32]) -> f64 {
    mean(
        truth
            .iter()
            .zip(pred)
            .map(|(t, p)| ((*t - *p) as f64).abs()),
    )
}

pub fn r2(truth: &[f32], pred: &[f32]) -> f64 {
    let n = truth.len().min(pred.len());
    if n == 0 {
        return 0.0;
    }
    let mean_t = truth[..n].iter().map(|v| *v as f64).sum::<f64>() / n as f64;
    let ss_tot: f64 = truth[..n]
        .iter()
        .map(|t| (*t as f64 - mean_t).powi(2))
        .sum();
    let ss_res: f64 = truth
        .iter()
        .zip(pred)
        .map(|(t, p)| (*t as f64 - *p as f64).powi(2))
        .sum();
    if ss_tot == 0.0 {
        return if ss_res == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - ss_res / ss_tot
}

fn mean(it: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = it.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_auc_with_tied_scores_matches_hand_computation() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.4, 0.8, 0.8, 0.9])
        // pairs (pos, neg): 0.4 vs {0.1 win, 0.4 tie, 0.8 loss} = 1.5;
        // 0.8 vs {win, win, tie} = 2.5; 0.9 vs {win, win, win} = 3 → 7/9
        let auc = roc_auc(
            &[0.1, 0.4, 0.4, 0.8, 0.8, 0.9],
            &[false, false, true, true, false, true],
        )
        .expect("both classes present");
        assert!((auc - 7.0 / 9.0).abs() < 1e-12, "{auc}");
        assert_eq!(roc_auc(&[0.3, 0.5], &[true, true]), None);
    }

    #[test]
    fn binary_and_macro_scores_match_hand_computation() {
        // truth 0 0 1 1 1 2, pred 0 1 1 1 2 2
        let truth = [0, 0, 1, 1, 1, 2];
        let pred = [0, 1, 1, 1, 2, 2];
        let m = confusion_matrix(&truth, &pred, 3);
        assert_eq!(m, vec![vec![1, 1, 0], vec![0, 2, 1], vec![0, 0, 1]]);
        assert!((accuracy(&truth, &pred) - 4.0 / 6.0).abs() < 1e-12);
        // class 0: p 1, r 0.5, f1 2/3; class 1: p 2/3, r 2/3, f1 2/3; class 2: p 0.5, r 1, f1 2/3
        let (p, r, f) = macro_scores(&m);
        assert!((p - (1.0 + 2.0 / 3.0 + 0.5) / 3.0).abs() < 1e-12);
        assert!((r - (0.5 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
        assert!((f - 2.0 / 3.0).abs() < 1e-12);
        let (p1, r1, f1) = class_scores(&m, 1);
        assert!((p1 - 2.0 / 3.0).abs() < 1e-12 && (r1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((f1 - 2.0 / 3.0).abs() < 1e-12);
        // no predicted positives: precision 0 by convention
        let m = confusion_matrix(&[1, 0], &[0, 0], 2);
        assert_eq!(class_scores(&m, 1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn regression_metrics_match_hand_computation() {
        // truth 1 2 3 4 (mean 2.5, SS_tot 5), pred 1.5 2 2.5 5:
        // residuals 0.5 0 0.5 1 → SS_res 1.5, MSE 0.375, MAE 0.5, R² = 1 − 1.5/5 = 0.7
        let t = [1.0, 2.0, 3.0, 4.0];
        let p = [1.5, 2.0, 2.5, 5.0];
        assert!((mse(&t, &p) - 0.375).abs() < 1e-12);
        assert!((mae(&t, &p) - 0.5).abs() < 1e-12);
        assert!((r2(&t, &p) - 0.7).abs() < 1e-12);
        assert_eq!(r2(&[2.0, 2.0], &[2.0, 2.0]), 1.0);
    }
}
