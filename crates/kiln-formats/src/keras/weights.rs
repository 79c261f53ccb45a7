//! `model.weights.h5`: the Dense kernels and biases, read with the pure-Rust `hdf5-reader`.
//!
//! Keras 3 writes this file with h5py (default `libver`, so superblock v0, symbol-table
//! groups, contiguous little-endian float32 datasets) at the paths its saver walks, not
//! at the layer names: the model's `layers` list is numbered per class, so the k-th
//! `Dense` lives at `layers/dense` (k = 0) or `layers/dense_{k}`, with the kernel
//! `[in, units]` at `vars/0` and the bias at `vars/1`. Recent versions add a `name`
//! attribute on `vars` holding the layer's name, checked when present.
//!
//! Choosing the HDF5 reader (Dec 2026). The first two were run on these fixtures
//! (superblock v0), on h5py files with `libver` v108 and latest (chunked, shuffled,
//! deflated, dense link storage) and on 3,000 randomly corrupted copies:
//! * `hdf5-reader` 0.12 (netcdf-rust project, read-only, MIT/Apache): read every file,
//!   including HDF5 2.0's layout v5 (h5py 3.16 `libver="latest"`); opens from memory;
//!   resource limits on reads, chunks and object headers; no panics on corrupted copies.
//!   Adds six crates, all pure Rust (it, hdf5-core, lru, memmap2, miniz_oxide, adler2). Chosen.
//! * `hdf5-pure` 0.47 (2026-09-20, read/write/edit, very active): read Keras' files and
//!   no panics, one dependency (byteorder) without `deflate`; but failed on layout v5
//!   (`InvalidLayoutVersion(5)`), and a writer/editor is more surface than kiln needs.
//! * `rust-hdf5` 0.7 (read/write, SWMR): opens files by path only, with advisory file
//!   locking, so an upload would go through a temporary file; not tried further.
//! * `consus-hdf5` 0.4 (part of the Consus storage stack): documents reading superblock
//!   v1–v3, not the v0 h5py writes by default; a young, low-level API.
//! * `hdf5-metno` 0.15 (bindings to the C libhdf5): needs libhdf5 on the machine,
//!   which breaks the two-command set-up; excluded.

use hdf5_reader::{Datatype, Hdf5File, OpenOptions};
use ndarray::{Array1, Array2, Ix1, Ix2};

use super::archive::WEIGHTS;
use super::invalid;
use kiln_nn::validation::Invalid;

/// Deflate's limit: no dataset can decode to more than this many times the file's size.
const MAX_EXPANSION: usize = 1032;

/// A Dense layer's kernel `[in, units]` and bias, as `Sequential::from_weights` takes them.
pub type DenseWeights = (Array2<f32>, Option<Array1<f32>>);

/// One Dense layer whose weights are wanted.
pub struct DenseWant<'a> {
    pub name: &'a str,
    /// How many `Dense` layers precede it in the model's `layers` list.
    pub index: usize,
    pub inputs: usize,
    pub units: usize,
    pub use_bias: bool,
}

/// Reads the kernel and bias of every layer of `wants`, checking their shapes.
pub fn read(bytes: Vec<u8>, wants: &[DenseWant<'_>]) -> Result<Vec<DenseWeights>, Invalid> {
    let budget = bytes.len().saturating_mul(MAX_EXPANSION);
    let options = OpenOptions::default()
        .with_chunk_cache_bytes(0)
        .with_max_read_bytes(budget)
        .with_max_chunk_bytes(budget)
        .with_max_object_header_bytes(bytes.len());
    let file = Hdf5File::from_vec_with_options(bytes, options)
        .map_err(|e| invalid(format!("{WEIGHTS} is not a readable HDF5 file: {e}")))?;
    wants.iter().map(|w| read_dense(&file, w)).collect()
}

fn read_dense(file: &Hdf5File, want: &DenseWant<'_>) -> Result<DenseWeights, Invalid> {
    let group = match want.index {
        0 => "layers/dense/vars".to_string(),
        k => format!("layers/dense_{k}/vars"),
    };
    let here = |what: &str| {
        format!(
            "{WEIGHTS}: {group} (layer \"{}\" (Dense)) {what}",
            want.name
        )
    };
    let vars = file
        .group(&group)
        .map_err(|e| invalid(here(&format!("cannot be read: {e}"))))?;
    if let Ok(attr) = vars.attribute("name")
        && let Ok(saved) = attr.read_string()
        && saved != want.name
    {
        return Err(invalid(here(&format!(
            "holds the weights of layer \"{saved}\"; the weights do not belong to this config.json"
        ))));
    }
    let count = vars
        .datasets()
        .map_err(|e| invalid(here(&format!("cannot be listed: {e}"))))?
        .len();
    let expected = 1 + usize::from(want.use_bias);
    if count != expected {
        return Err(invalid(here(&format!(
            "has {count} variables; a Dense layer{} has {expected} (kernel{})",
            if want.use_bias { "" } else { " without bias" },
            if want.use_bias { ", bias" } else { "" }
        ))));
    }
    let kernel = dataset(file, &group, "0", &[want.inputs, want.units], &here)?
        .into_dimensionality::<Ix2>()
        .map_err(|e| invalid(here(&format!("kernel: {e}"))))?;
    let bias = if want.use_bias {
        Some(
            dataset(file, &group, "1", &[want.units], &here)?
                .into_dimensionality::<Ix1>()
                .map_err(|e| invalid(here(&format!("bias: {e}"))))?,
        )
    } else {
        None
    };
    Ok((kernel, bias))
}

/// The float32 dataset `group/var`, which must have shape `shape` (checked before reading).
fn dataset(
    file: &Hdf5File,
    group: &str,
    var: &str,
    shape: &[usize],
    here: &dyn Fn(&str) -> String,
) -> Result<ndarray::ArrayD<f32>, Invalid> {
    let what = if var == "0" { "kernel" } else { "bias" };
    let d = file
        .dataset(&format!("{group}/{var}"))
        .map_err(|e| invalid(here(&format!("has no {what} ({var}): {e}"))))?;
    if !matches!(d.dtype(), Datatype::FloatingPoint { size: 4, .. }) {
        return Err(invalid(here(&format!(
            "{what} is {:?}; kiln imports float32 weights",
            d.dtype()
        ))));
    }
    let found = d.shape();
    if found.len() != shape.len() || found.iter().zip(shape).any(|(&f, &s)| f != s as u64) {
        return Err(invalid(here(&format!(
            "{what} has shape {found:?}; config.json implies {shape:?}"
        ))));
    }
    d.read_array::<f32>()
        .map_err(|e| invalid(here(&format!("{what} cannot be read: {e}"))))
}
