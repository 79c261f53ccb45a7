//! Compiled models for the predict path, keyed by the model file's sha256.
//!
//! Decoding a file and choosing kernels (which times dense against sparse for
//! pruned layers) costs far more than predicting a few rows, so the serving path
//! keeps the last few compiled models. Files are content-addressed and never
//! change under a digest, so an entry never goes stale.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::nn::Predictor;

/// Compiled models kept at once; older ones are dropped first.
const CAPACITY: usize = 16;

#[derive(Default)]
pub struct ModelCache {
    entries: Mutex<VecDeque<(String, Arc<dyn Predictor>)>>,
}

impl ModelCache {
    pub fn get(&self, sha256: &str) -> Option<Arc<dyn Predictor>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let pos = entries.iter().position(|(k, _)| k == sha256)?;
        // Move to the back: most recently used.
        let entry = entries.remove(pos)?;
        let model = entry.1.clone();
        entries.push_back(entry);
        Some(model)
    }

    pub fn insert(&self, sha256: &str, model: Arc<dyn Predictor>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.iter().any(|(k, _)| k == sha256) {
            return;
        }
        if entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back((sha256.to_string(), model));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Sequential;
    use crate::nn::kernels::sparse::{Choice, compile_with};

    fn compiled() -> Arc<dyn Predictor> {
        let arch = serde_json::from_str(
            r#"{"input_dim": 2, "layers": [{"type": "dense", "units": 1, "activation": "linear"}]}"#,
        )
        .expect("arch");
        Arc::new(compile_with(&Sequential::new(&arch, 1), Choice::Dense))
    }

    #[test]
    fn the_least_recently_used_entry_is_dropped_first() {
        let cache = ModelCache::default();
        for i in 0..CAPACITY {
            cache.insert(&format!("{i}"), compiled());
        }
        assert!(cache.get("0").is_some()); // "0" is now the most recent
        cache.insert("new", compiled());
        assert!(cache.get("1").is_none(), "the oldest unused entry went");
        assert!(cache.get("0").is_some() && cache.get("new").is_some());
    }
}
