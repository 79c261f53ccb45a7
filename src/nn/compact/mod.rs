//! Network compaction: remove dead units, merge duplicates, fold linear layers, low-rank factorization.
