//! What a client may write for an architecture, before it is typed: every
//! field any layer takes, so an unknown one is refused and a misplaced one
//! (`rate` on a conv2d) is named.

use serde::{Deserialize, Serialize};

use super::{Activation, Architecture, LayerSpec, Padding, default_activation};

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum LayerType {
    Dense,
    Dropout,
    Conv2d,
    MaxPool2d,
    AvgPool2d,
    GlobalAvgPool2d,
    BatchNorm,
    Flatten,
}

/// `3` or `[3, 5]`: a window dimension given once for both axes, or per axis.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub(super) enum Pair {
    One(usize),
    Two([usize; 2]),
}

impl Pair {
    fn both(self) -> [usize; 2] {
        match self {
            Pair::One(v) => [v, v],
            Pair::Two(v) => v,
        }
    }
}

/// `"valid"`, `"same"`, `[top, left, bottom, right]`, or `[vertical, horizontal]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub(super) enum PaddingRepr {
    Named(String),
    Amounts(Vec<usize>),
}

impl TryFrom<PaddingRepr> for Padding {
    type Error = String;

    fn try_from(r: PaddingRepr) -> Result<Self, String> {
        match r {
            PaddingRepr::Named(n) if n == "valid" => Ok(Padding::Valid),
            PaddingRepr::Named(n) if n == "same" => Ok(Padding::Same),
            PaddingRepr::Named(n) => Err(format!(
                "padding must be \"valid\", \"same\" or a list of amounts; found {n:?}"
            )),
            PaddingRepr::Amounts(a) => match a[..] {
                [v, h] => Ok(Padding::Explicit([v, h, v, h])),
                [t, l, b, r] => Ok(Padding::Explicit([t, l, b, r])),
                _ => Err(format!(
                    "explicit padding is [vertical, horizontal] or [top, left, bottom, right]; found {a:?}"
                )),
            },
        }
    }
}

impl From<Padding> for PaddingRepr {
    fn from(p: Padding) -> Self {
        match p {
            Padding::Valid => PaddingRepr::Named("valid".into()),
            Padding::Same => PaddingRepr::Named("same".into()),
            Padding::Explicit(a) => PaddingRepr::Amounts(a.to_vec()),
        }
    }
}

/// Every field any layer type takes; [`LayerSpec`]'s `TryFrom` checks which apply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLayer {
    #[serde(rename = "type")]
    kind: LayerType,
    units: Option<usize>,
    activation: Option<Activation>,
    use_bias: Option<bool>,
    rate: Option<f32>,
    filters: Option<usize>,
    kernel_size: Option<Pair>,
    strides: Option<Pair>,
    padding: Option<Padding>,
    dilation: Option<Pair>,
    groups: Option<usize>,
    pool_size: Option<Pair>,
    momentum: Option<f32>,
    epsilon: Option<f32>,
}

impl RawLayer {
    /// The names of the fields present, to refuse those the type does not take.
    fn present(&self) -> Vec<&'static str> {
        let fields = [
            ("units", self.units.is_some()),
            ("activation", self.activation.is_some()),
            ("use_bias", self.use_bias.is_some()),
            ("rate", self.rate.is_some()),
            ("filters", self.filters.is_some()),
            ("kernel_size", self.kernel_size.is_some()),
            ("strides", self.strides.is_some()),
            ("padding", self.padding.is_some()),
            ("dilation", self.dilation.is_some()),
            ("groups", self.groups.is_some()),
            ("pool_size", self.pool_size.is_some()),
            ("momentum", self.momentum.is_some()),
            ("epsilon", self.epsilon.is_some()),
        ];
        fields
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect()
    }
}

fn allowed(kind: LayerType) -> (&'static str, &'static [&'static str]) {
    match kind {
        LayerType::Dense => ("dense", &["units", "activation", "use_bias"]),
        LayerType::Dropout => ("dropout", &["rate"]),
        LayerType::Conv2d => (
            "conv2d",
            &[
                "filters",
                "kernel_size",
                "strides",
                "padding",
                "dilation",
                "groups",
                "activation",
                "use_bias",
            ],
        ),
        LayerType::MaxPool2d => ("max_pool2d", &["pool_size", "strides", "padding"]),
        LayerType::AvgPool2d => ("avg_pool2d", &["pool_size", "strides", "padding"]),
        LayerType::GlobalAvgPool2d => ("global_avg_pool2d", &[]),
        LayerType::BatchNorm => ("batch_norm", &["momentum", "epsilon", "activation"]),
        LayerType::Flatten => ("flatten", &[]),
    }
}

impl TryFrom<RawLayer> for LayerSpec {
    type Error = String;

    fn try_from(raw: RawLayer) -> Result<Self, String> {
        let (name, fields) = allowed(raw.kind);
        if let Some(extra) = raw.present().into_iter().find(|f| !fields.contains(f)) {
            return Err(format!(
                "a {name} layer does not take `{extra}`; it takes {}",
                if fields.is_empty() {
                    "no fields but `type`".to_string()
                } else {
                    fields
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        let activation = raw.activation.unwrap_or_else(default_activation);
        Ok(match raw.kind {
            LayerType::Dense => LayerSpec::Dense {
                units: raw.units.ok_or("a dense layer needs `units`")?,
                activation,
                use_bias: raw.use_bias.unwrap_or(true),
            },
            LayerType::Dropout => LayerSpec::Dropout {
                rate: raw.rate.ok_or("a dropout layer needs `rate`")?,
            },
            LayerType::Conv2d => LayerSpec::Conv2d {
                filters: raw.filters.ok_or("a conv2d layer needs `filters`")?,
                kernel_size: raw
                    .kernel_size
                    .ok_or("a conv2d layer needs `kernel_size`")?
                    .both(),
                strides: raw.strides.map_or([1, 1], Pair::both),
                padding: raw.padding.unwrap_or(Padding::Valid),
                dilation: raw.dilation.map_or([1, 1], Pair::both),
                groups: raw.groups.unwrap_or(1),
                activation,
                use_bias: raw.use_bias.unwrap_or(true),
            },
            LayerType::MaxPool2d | LayerType::AvgPool2d => {
                let pool_size = raw
                    .pool_size
                    .ok_or_else(|| format!("a {name} layer needs `pool_size`"))?
                    .both();
                // Keras and PyTorch: the stride defaults to the window.
                let strides = raw.strides.map_or(pool_size, Pair::both);
                let padding = raw.padding.unwrap_or(Padding::Valid);
                if let LayerType::MaxPool2d = raw.kind {
                    LayerSpec::MaxPool2d {
                        pool_size,
                        strides,
                        padding,
                    }
                } else {
                    LayerSpec::AvgPool2d {
                        pool_size,
                        strides,
                        padding,
                    }
                }
            }
            LayerType::GlobalAvgPool2d => LayerSpec::GlobalAvgPool2d,
            LayerType::BatchNorm => LayerSpec::BatchNorm {
                momentum: raw.momentum.unwrap_or(0.99),
                epsilon: raw.epsilon.unwrap_or(1e-3),
                activation,
            },
            LayerType::Flatten => LayerSpec::Flatten,
        })
    }
}

/// `input_dim`, `input_shape`, or both when they agree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArchitecture {
    input_dim: Option<usize>,
    input_shape: Option<Vec<usize>>,
    layers: Vec<LayerSpec>,
}

impl TryFrom<RawArchitecture> for Architecture {
    type Error = String;

    fn try_from(raw: RawArchitecture) -> Result<Self, String> {
        let size = |dims: &[usize]| {
            dims.iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| format!("input_shape {dims:?} is too large"))
        };
        let (input_dim, input_shape) = match (raw.input_dim, raw.input_shape) {
            (None, None) => return Err("an architecture needs `input_dim` or `input_shape`".into()),
            (Some(d), None) => (d, None),
            // `[n]` is the flat shorthand spelled as a shape.
            (dim, Some(dims)) if dims.len() == 1 => {
                if dim.is_some_and(|d| d != dims[0]) {
                    return Err(format!(
                        "input_dim {dim:?} disagrees with input_shape {dims:?}"
                    ));
                }
                (dims[0], None)
            }
            (dim, Some(dims)) => {
                let n = size(&dims)?;
                if dim.is_some_and(|d| d != n) {
                    return Err(format!(
                        "input_dim must be the product of input_shape {dims:?} ({n}); found {}",
                        dim.unwrap_or_default()
                    ));
                }
                (n, Some(dims))
            }
        };
        Ok(Architecture {
            input_dim,
            input_shape,
            layers: raw.layers,
        })
    }
}
