//! The frozen teacher's soft targets, cached when they fit the memory budget.
//!
//! The teacher never changes during a distillation, so its soft targets for
//! the training rows are a pure function of the row: computing them once
//! saves one teacher forward pass per row per epoch (the teacher is the large
//! model, so that is most of the cost). When `rows × outputs` floats do not
//! fit the budget, they are recomputed for every batch from its rows instead.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

use super::error::DistillError;
use super::loss::{DistillLoss, loss_input};
use crate::model::Sequential;

/// Rows per teacher forward pass when filling the cache: bounds the
/// activations held at once, whatever the dataset size.
const CHUNK_ROWS: usize = 1024;

/// How the teacher's soft targets reach the trainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TeacherPath {
    /// Computed once for every row before training.
    Cached,
    /// Computed per batch from the batch's rows.
    Streamed,
}

/// The frozen teacher's soft targets for the rows of `x`: computed once for all rows (in chunks of 1024 rows,
/// inference mode) when `rows × outputs × 4 bytes ≤ budget_bytes`, else computed per batch from the gathered rows.
pub struct TeacherTargets<'a> {
    teacher: &'a Sequential,
    x: ArrayView2<'a, f32>,
    loss: DistillLoss,
    /// `[rows, outputs]` soft targets on the cached path.
    cache: Option<Array2<f32>>,
    /// Gathered input rows on the streamed path, grown to the largest batch.
    batch_x: Array2<f32>,
}

impl<'a> TeacherTargets<'a> {
    /// # Panics
    /// If `x` does not have the teacher's input width; [`Self::try_new`] checks it.
    pub fn new(
        teacher: &'a Sequential,
        x: ArrayView2<'a, f32>,
        loss: DistillLoss,
        budget_bytes: usize,
    ) -> Self {
        assert_eq!(x.ncols(), teacher.input_dim(), "teacher input width");
        let never = || false;
        match Self::try_new(teacher, x, loss, budget_bytes, &never) {
            Ok(t) => t,
            // Unreachable: the width is asserted above and nothing cancels.
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::new`], or `Err` when `x` does not have the teacher's input width,
    /// or when `cancelled()` turns true while the cache fills (it is polled
    /// between 1024-row chunks: the pass over a large transfer set is long).
    pub fn try_new(
        teacher: &'a Sequential,
        x: ArrayView2<'a, f32>,
        loss: DistillLoss,
        budget_bytes: usize,
        cancelled: &(dyn Fn() -> bool + Sync),
    ) -> Result<Self, DistillError> {
        if x.ncols() != teacher.input_dim() {
            return Err(DistillError::InputWidth {
                teacher: teacher.input_dim(),
                other: "dataset",
                found: x.ncols(),
            });
        }
        let outputs = teacher.output_dim();
        let bytes = x
            .nrows()
            .checked_mul(outputs)
            .and_then(|v| v.checked_mul(size_of::<f32>()));
        let cache = match bytes.is_some_and(|b| b <= budget_bytes) {
            true => Some(
                soft_targets_chunked(teacher, x, loss, cancelled).ok_or(DistillError::Cancelled)?,
            ),
            false => None,
        };
        Ok(Self {
            teacher,
            x,
            loss,
            cache,
            batch_x: Array2::zeros((0, x.ncols())),
        })
    }

    pub fn path(&self) -> TeacherPath {
        if self.cache.is_some() {
            TeacherPath::Cached
        } else {
            TeacherPath::Streamed
        }
    }

    /// Bytes held by the cache (0 when streamed).
    pub fn cache_bytes(&self) -> usize {
        self.cache
            .as_ref()
            .map_or(0, |c| c.len() * size_of::<f32>())
    }

    /// The loss the targets were softened for.
    pub fn loss(&self) -> DistillLoss {
        self.loss
    }

    /// Width of a row of soft targets (the teacher's outputs).
    pub fn outputs(&self) -> usize {
        self.teacher.output_dim()
    }

    /// Soft targets of `rows` written into `out` (`[rows.len(), outputs]`).
    ///
    /// # Panics
    /// If a row is out of range of `x` or `out` has the wrong shape (the
    /// trainer passes indices of the same `x`).
    pub fn gather(&mut self, rows: &[usize], mut out: ArrayViewMut2<f32>) {
        if let Some(cache) = &self.cache {
            for (mut dst, &i) in out.rows_mut().into_iter().zip(rows) {
                dst.assign(&cache.row(i));
            }
            return;
        }
        let n = rows.len();
        if self.batch_x.nrows() < n {
            self.batch_x = Array2::zeros((n, self.x.ncols()));
        }
        for (mut dst, &i) in self.batch_x.rows_mut().into_iter().zip(rows) {
            dst.assign(&self.x.row(i));
        }
        let logits = loss_input(
            self.teacher,
            self.loss.hard,
            self.batch_x.slice(s![..n, ..]),
        );
        out.assign(&self.loss.soft_targets(logits.view()));
    }
}

/// Soft targets of every row of `x`, the teacher run on [`CHUNK_ROWS`] rows at
/// a time, the chunks shared out over the machine's cores: this one pass is
/// most of a distillation's cost, and every chunk is independent of the others.
/// `None` when `cancelled()` turned true.
fn soft_targets_chunked(
    teacher: &Sequential,
    x: ArrayView2<f32>,
    loss: DistillLoss,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Option<Array2<f32>> {
    let mut out = Array2::zeros((x.nrows(), teacher.output_dim()));
    let chunks = x.nrows().div_ceil(CHUNK_ROWS);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(chunks)
        .max(1);
    let per_thread = chunks.div_ceil(threads) * CHUNK_ROWS;
    let fill = |x: ArrayView2<f32>, mut out: ndarray::ArrayViewMut2<f32>| {
        let mut start = 0;
        while start < x.nrows() && !cancelled() {
            let stop = (start + CHUNK_ROWS).min(x.nrows());
            let logits = loss_input(teacher, loss.hard, x.slice(s![start..stop, ..]));
            out.slice_mut(s![start..stop, ..])
                .assign(&loss.soft_targets(logits.view()));
            start = stop;
        }
    };
    std::thread::scope(|scope| {
        let pieces = x
            .axis_chunks_iter(ndarray::Axis(0), per_thread)
            .zip(out.axis_chunks_iter_mut(ndarray::Axis(0), per_thread));
        for (xs, outs) in pieces {
            scope.spawn(move || fill(xs, outs));
        }
    });
    (!cancelled()).then_some(out)
}
