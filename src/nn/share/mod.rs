//! Weight sharing (Deep Compression): per-layer k-means codebooks and centroid fine-tuning.
