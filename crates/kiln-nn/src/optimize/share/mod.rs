//! Weight sharing (Deep Compression): per-layer k-means codebooks and centroid fine-tuning.
//!
//! [`share_weights`] clusters each dense layer's non-zero weights into `2^bits`
//! centroids ([`kmeans::kmeans_1d`]); [`CentroidTuner`] then fine-tunes the
//! centroids with the training loop while every weight stays on its codebook.
//! `kiln::formats::compressed` stores the result.

pub mod codebook;
pub mod kmeans;
pub mod tuning;

pub use codebook::{SharedLayer, SharedWeights, share_weights};
pub use kmeans::{CodebookInit, kmeans_1d};
pub use tuning::CentroidTuner;
