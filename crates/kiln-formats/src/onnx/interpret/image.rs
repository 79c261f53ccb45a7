//! The image operators of the reference interpreter, from the ONNX operator spec
//! alone (explicit `pads` `[x1_begin, x2_begin, x1_end, x2_end]`, `floor` output
//! sizes, NCHW): `Conv`, `MaxPool`, `AveragePool` (`count_include_pad`),
//! `GlobalAveragePool` and inference-mode `BatchNormalization`. Sums are in f64.
//! Nothing here shares code with kiln's kernels, so agreement is evidence.

use super::super::proto::NodeProto;
use super::super::proto::tensor_proto::DataType;
use super::Value;

fn ints(node: &NodeProto, name: &str, default: &[i64]) -> Vec<i64> {
    node.attribute
        .iter()
        .find(|a| a.name() == name)
        .map_or(default.to_vec(), |a| a.ints.clone())
}

/// `[n, c, h, w]` of a rank-4 value.
fn nchw(x: &Value) -> Result<[usize; 4], String> {
    match x.dims[..] {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(format!("expected an NCHW tensor, got dims {:?}", x.dims)),
    }
}

/// A window's attributes, checked for two spatial axes.
struct Window {
    kernel: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    /// `[top, left, bottom, right]`.
    pads: [usize; 4],
}

impl Window {
    fn read(node: &NodeProto, kernel_default: Option<[usize; 2]>) -> Result<Self, String> {
        let two = |v: Vec<i64>, what: &str| -> Result<[usize; 2], String> {
            match v[..] {
                [a, b] if a >= 1 && b >= 1 => Ok([a as usize, b as usize]),
                _ => Err(format!("{what} {v:?}")),
            }
        };
        let kernel = match (ints(node, "kernel_shape", &[]), kernel_default) {
            (k, Some(d)) if k.is_empty() => d,
            (k, _) => two(k, "kernel_shape")?,
        };
        if node
            .attribute
            .iter()
            .any(|a| a.name() == "auto_pad" && a.s() != b"NOTSET")
        {
            return Err("auto_pad is not interpreted".into());
        }
        let pads = match ints(node, "pads", &[0, 0, 0, 0])[..] {
            [a, b, c, d] if [a, b, c, d].iter().all(|&p| p >= 0) => {
                [a as usize, b as usize, c as usize, d as usize]
            }
            ref p => return Err(format!("pads {p:?}")),
        };
        Ok(Self {
            kernel,
            strides: two(ints(node, "strides", &[1, 1]), "strides")?,
            dilations: two(ints(node, "dilations", &[1, 1]), "dilations")?,
            pads,
        })
    }

    /// `floor((in + pads − dilation·(k − 1) − 1) / stride) + 1` per axis.
    fn output(&self, h: usize, w: usize) -> Result<[usize; 2], String> {
        let axis = |len: usize, a: usize| {
            let span = self.dilations[a] * (self.kernel[a] - 1) + 1;
            let padded = len + self.pads[a] + self.pads[a + 2];
            padded
                .checked_sub(span)
                .map(|r| r / self.strides[a] + 1)
                .ok_or(format!("a window of {span} does not fit {padded}"))
        };
        Ok([axis(h, 0)?, axis(w, 1)?])
    }

    /// The input row and column tap `(ky, kx)` of output `(oy, ox)` reads, if inside.
    fn source(
        &self,
        oy: usize,
        ox: usize,
        ky: usize,
        kx: usize,
        h: usize,
        w: usize,
    ) -> Option<(usize, usize)> {
        let y = (oy * self.strides[0] + ky * self.dilations[0]).checked_sub(self.pads[0])?;
        let x = (ox * self.strides[1] + kx * self.dilations[1]).checked_sub(self.pads[1])?;
        (y < h && x < w).then_some((y, x))
    }
}

/// `Conv(X, W, B?)` with `group`.
pub fn conv(
    node: &NodeProto,
    x: &Value,
    weight: &Value,
    bias: Option<&Value>,
) -> Result<Value, String> {
    let [n, c, h, w] = nchw(x)?;
    let [m, cg, kh, kw] = nchw(weight)?;
    let group = node
        .attribute
        .iter()
        .find(|a| a.name() == "group")
        .map_or(1, |a| a.i());
    let group = usize::try_from(group).map_err(|_| format!("group {group}"))?;
    if group == 0 || c != cg * group || m % group != 0 {
        return Err(format!(
            "group {group}: X {:?}, W {:?}",
            x.dims, weight.dims
        ));
    }
    let win = Window::read(node, Some([kh, kw]))?;
    if win.kernel != [kh, kw] {
        return Err(format!(
            "kernel_shape {:?} for W {:?}",
            win.kernel, weight.dims
        ));
    }
    let [oh, ow] = win.output(h, w)?;
    let per_group = m / group;
    let mut data = vec![0.0f32; n * m * oh * ow];
    for i in 0..n {
        for f in 0..m {
            let g = f / per_group;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias.map_or(0.0, |b| f64::from(b.data[f]));
                    for k in 0..cg {
                        let ch = g * cg + k;
                        for ky in 0..kh {
                            for kx in 0..kw {
                                if let Some((y, xx)) = win.source(oy, ox, ky, kx, h, w) {
                                    let xv = x.data[((i * c + ch) * h + y) * w + xx];
                                    let wv = weight.data[((f * cg + k) * kh + ky) * kw + kx];
                                    acc += f64::from(xv) * f64::from(wv);
                                }
                            }
                        }
                    }
                    data[((i * m + f) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
    Ok(Value {
        dtype: DataType::Float,
        dims: vec![n, m, oh, ow],
        data,
    })
}

/// `MaxPool` (`max == true`) or `AveragePool` over each channel.
pub fn pool(node: &NodeProto, x: &Value, max: bool) -> Result<Value, String> {
    let [n, c, h, w] = nchw(x)?;
    if node
        .attribute
        .iter()
        .any(|a| a.name() == "ceil_mode" && a.i() != 0)
    {
        return Err("ceil_mode is not interpreted".into());
    }
    let include_pad = node
        .attribute
        .iter()
        .any(|a| a.name() == "count_include_pad" && a.i() != 0);
    let win = Window::read(node, None)?;
    let [oh, ow] = win.output(h, w)?;
    let mut data = Vec::with_capacity(n * c * oh * ow);
    for plane in x.data.chunks(h * w) {
        for oy in 0..oh {
            for ox in 0..ow {
                let taps: Vec<f32> = (0..win.kernel[0])
                    .flat_map(|ky| (0..win.kernel[1]).map(move |kx| (ky, kx)))
                    .filter_map(|(ky, kx)| win.source(oy, ox, ky, kx, h, w))
                    .map(|(y, xx)| plane[y * w + xx])
                    .collect();
                data.push(if max {
                    taps.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                } else {
                    let count = if include_pad {
                        win.kernel[0] * win.kernel[1]
                    } else {
                        taps.len()
                    };
                    (taps.iter().map(|&v| f64::from(v)).sum::<f64>() / count as f64) as f32
                });
            }
        }
    }
    Ok(Value {
        dtype: DataType::Float,
        dims: vec![n, c, oh, ow],
        data,
    })
}

/// `GlobalAveragePool`: `[n, c, h, w] → [n, c, 1, 1]`.
pub fn global_average(x: &Value) -> Result<Value, String> {
    let [n, c, h, w] = nchw(x)?;
    let data = x
        .data
        .chunks(h * w)
        .map(|p| (p.iter().map(|&v| f64::from(v)).sum::<f64>() / (h * w) as f64) as f32)
        .collect();
    Ok(Value {
        dtype: DataType::Float,
        dims: vec![n, c, 1, 1],
        data,
    })
}

/// Inference `BatchNormalization`: `(x − mean) / √(var + ε) · scale + B` along axis 1.
pub fn batch_norm(x: &Value, p: [&Value; 4], epsilon: f32) -> Result<Value, String> {
    let [scale, bias, mean, var] = p;
    let c = *x
        .dims
        .get(1)
        .ok_or("BatchNormalization of a rank < 2 tensor")?;
    if p.iter().any(|v| v.data.len() != c) {
        return Err(format!("parameters for {c} channels expected"));
    }
    let inner: usize = x.dims[2..].iter().product();
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            let ch = k / inner % c;
            let norm = (f64::from(v) - f64::from(mean.data[ch]))
                / (f64::from(var.data[ch]) + f64::from(epsilon)).sqrt();
            (norm * f64::from(scale.data[ch]) + f64::from(bias.data[ch])) as f32
        })
        .collect();
    Ok(Value {
        dtype: DataType::Float,
        dims: x.dims.clone(),
        data,
    })
}
