//! A dataset's shape as job parameters are checked against it.

use super::DatasetShape;
use kiln_nn::data::Dataset;

/// The [`DatasetShape`] of a loaded dataset.
pub(crate) fn shape_of(d: &Dataset) -> DatasetShape {
    DatasetShape {
        rows: d.rows(),
        features: d.features(),
        classes: d.classes,
        task: d.task,
        input_shape: d.input_shape.clone(),
    }
}
