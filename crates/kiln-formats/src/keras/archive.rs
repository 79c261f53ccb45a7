//! The `.keras` zip: `config.json`, `metadata.json` and `model.weights.h5`.
//!
//! Keras (`keras/src/saving/saving_lib.py`) writes the entries with `zipfile`'s
//! default, stored; a file re-zipped by hand is usually deflated, which the `zip`
//! crate reads with its pure-Rust `deflate-flate2-zlib-rs` feature. Every entry is
//! read through a cap proportional to the upload's size, so a zip bomb cannot make
//! kiln allocate more than a bounded multiple of what it received.

use std::io::{Cursor, Read};

use zip::ZipArchive;
use zip::result::ZipError;

use super::invalid;
use kiln_nn::validation::Invalid;

pub const CONFIG: &str = "config.json";
pub const METADATA: &str = "metadata.json";
pub const WEIGHTS: &str = "model.weights.h5";

/// How many times its compressed size an entry may expand (deflate tops out near 1032×,
/// but weights barely compress; 64× leaves room for zero-heavy files).
const MAX_EXPANSION: u64 = 64;
/// Small entries may always expand this far, whatever their compressed size.
const MIN_CAP: u64 = 1 << 20;

/// The entries kiln reads, as bytes.
pub struct Archive {
    pub config: Vec<u8>,
    /// Absent in hand-made files; only the Keras version is taken from it.
    pub metadata: Option<Vec<u8>>,
    pub weights: Vec<u8>,
}

impl Archive {
    /// Reads the three entries; a missing `config.json` or `model.weights.h5` is an error
    /// naming it.
    pub fn read(bytes: &[u8]) -> Result<Self, Invalid> {
        let mut zip = ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| invalid(format!("not a readable .keras (zip) file: {e}")))?;
        let cap = (bytes.len() as u64)
            .saturating_mul(MAX_EXPANSION)
            .max(MIN_CAP);
        let config = entry(&mut zip, CONFIG, cap)?
            .ok_or_else(|| invalid(format!("the .keras file has no {CONFIG}")))?;
        let metadata = entry(&mut zip, METADATA, cap)?;
        let weights = match entry(&mut zip, WEIGHTS, cap)? {
            Some(w) => w,
            None if zip.file_names().any(|n| n == "model.weights.json") => {
                return Err(invalid(format!(
                    "the .keras file has sharded weights (model.weights.json) instead of {WEIGHTS}; \
                     kiln reads a single {WEIGHTS} (save without max_shard_size)"
                )));
            }
            None => return Err(invalid(format!("the .keras file has no {WEIGHTS}"))),
        };
        Ok(Self {
            config,
            metadata,
            weights,
        })
    }
}

/// The entry `name`, or `None` when the zip has none; never more than `cap` bytes.
fn entry(
    zip: &mut ZipArchive<Cursor<&[u8]>>,
    name: &str,
    cap: u64,
) -> Result<Option<Vec<u8>>, Invalid> {
    let file = match zip.by_name(name) {
        Ok(f) => f,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(invalid(format!("{name} cannot be read from the zip: {e}"))),
    };
    let declared = file.size();
    if declared > cap {
        return Err(invalid(format!(
            "{name} claims {declared} bytes, more than {cap} for an upload of this size"
        )));
    }
    // The declared size only sizes the buffer; the cap bounds what is read.
    let mut out = Vec::with_capacity(declared as usize);
    let read = file
        .take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| invalid(format!("{name} cannot be read from the zip: {e}")))?;
    if read as u64 > cap {
        return Err(invalid(format!(
            "{name} expands beyond {cap} bytes, more than an upload of this size can hold"
        )));
    }
    Ok(Some(out))
}
