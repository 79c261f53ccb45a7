//! [`OptimizerParams`] and the parsing of `params.optimizer`, the largest choice in a train job, kept on its own.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Fields, non_negative_finite, positive_finite, unit_interval};
use kiln_nn::train::optim::{Adam, AdamW, Momentum, Nesterov, OptimizerConfig, RmsProp, Sgd};
use kiln_nn::validation::Checker;

/// Optimizer parameters with defaults filled in (serialised into the normalised params).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerParams {
    Sgd {
        lr: f64,
    },
    Momentum {
        lr: f64,
        momentum: f64,
    },
    Nesterov {
        lr: f64,
        momentum: f64,
    },
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    Adamw {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    Rmsprop {
        lr: f64,
        rho: f64,
        eps: f64,
    },
}

impl OptimizerParams {
    pub fn to_config(&self) -> OptimizerConfig {
        let f = |v: f64| v as f32;
        match *self {
            OptimizerParams::Sgd { lr } => OptimizerConfig::Sgd(Sgd { lr: f(lr) }),
            OptimizerParams::Momentum { lr, momentum } => OptimizerConfig::Momentum(Momentum {
                lr: f(lr),
                momentum: f(momentum),
            }),
            OptimizerParams::Nesterov { lr, momentum } => OptimizerConfig::Nesterov(Nesterov {
                lr: f(lr),
                momentum: f(momentum),
            }),
            OptimizerParams::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => OptimizerConfig::Adam(Adam {
                lr: f(lr),
                beta1: f(beta1),
                beta2: f(beta2),
                eps: f(eps),
            }),
            OptimizerParams::Adamw {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => OptimizerConfig::AdamW(AdamW {
                adam: Adam {
                    lr: f(lr),
                    beta1: f(beta1),
                    beta2: f(beta2),
                    eps: f(eps),
                },
                weight_decay: f(weight_decay),
            }),
            OptimizerParams::Rmsprop { lr, rho, eps } => OptimizerConfig::RmsProp(RmsProp {
                lr: f(lr),
                rho: f(rho),
                eps: f(eps),
            }),
        }
    }
}

const OPTIMIZERS: &str = "sgd, momentum, nesterov, adam, adamw, rmsprop";

pub(super) fn optimizer(value: Option<&Value>, c: &mut Checker) -> OptimizerParams {
    let path = "params.optimizer";
    let default = OptimizerParams::Adam {
        lr: 0.001,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    let name_only;
    let value = match value {
        None => return default,
        // "optimizer": "sgd" is shorthand for {"name": "sgd"}.
        Some(Value::String(s)) => {
            name_only = serde_json::json!({ "name": s });
            &name_only
        }
        Some(v) => v,
    };
    let mut f = Fields::new(value, path, c);
    let name: String = f.get("name", c).unwrap_or_else(|| "adam".into());
    let mut lr = f.get::<f64>("lr", c);
    let num = |f: &mut Fields<'_>, c: &mut Checker, key: &'static str, default: f64| {
        f.get::<f64>(key, c).unwrap_or(default)
    };
    let (field_lr, field) = (f.path("lr"), |k: &str| format!("{path}.{k}"));
    let params = match name.as_str() {
        "sgd" => OptimizerParams::Sgd {
            lr: lr.take().unwrap_or(0.01),
        },
        "momentum" | "nesterov" => {
            let momentum = num(&mut f, c, "momentum", 0.9);
            unit_interval(c, field("momentum"), momentum);
            let lr = lr.take().unwrap_or(0.01);
            if name == "momentum" {
                OptimizerParams::Momentum { lr, momentum }
            } else {
                OptimizerParams::Nesterov { lr, momentum }
            }
        }
        "adam" | "adamw" => {
            let beta1 = num(&mut f, c, "beta1", 0.9);
            let beta2 = num(&mut f, c, "beta2", 0.999);
            let eps = num(&mut f, c, "eps", 1e-8);
            unit_interval(c, field("beta1"), beta1);
            unit_interval(c, field("beta2"), beta2);
            positive_finite(c, field("eps"), eps);
            let lr = lr.take().unwrap_or(0.001);
            if name == "adam" {
                OptimizerParams::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                }
            } else {
                let weight_decay = num(&mut f, c, "weight_decay", 0.01);
                non_negative_finite(c, field("weight_decay"), weight_decay);
                OptimizerParams::Adamw {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                }
            }
        }
        "rmsprop" => {
            let rho = num(&mut f, c, "rho", 0.9);
            let eps = num(&mut f, c, "eps", 1e-7);
            unit_interval(c, field("rho"), rho);
            positive_finite(c, field("eps"), eps);
            OptimizerParams::Rmsprop {
                lr: lr.take().unwrap_or(0.001),
                rho,
                eps,
            }
        }
        other => {
            c.push(
                field("name"),
                format!("unknown optimizer {other:?}; expected one of: {OPTIMIZERS}"),
            );
            f.finish(&mut Checker::new());
            return default;
        }
    };
    let lr_value = match &params {
        OptimizerParams::Sgd { lr }
        | OptimizerParams::Momentum { lr, .. }
        | OptimizerParams::Nesterov { lr, .. }
        | OptimizerParams::Adam { lr, .. }
        | OptimizerParams::Adamw { lr, .. }
        | OptimizerParams::Rmsprop { lr, .. } => *lr,
    };
    if positive_finite(c, field_lr.clone(), lr_value) {
        c.require(lr_value <= 10.0, field_lr, "must be at most 10");
    }
    f.finish(c);
    params
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::fields;

    #[test]
    fn bad_optimizer_params_each_name_their_field() {
        assert_eq!(
            fields(json!({"optimizer": {"name": "adam", "lr": -0.1}})),
            ["params.optimizer.lr"]
        );
        assert_eq!(
            fields(json!({"optimizer": {"name": "adam", "lr": "fast"}})),
            ["params.optimizer.lr"]
        );
        assert_eq!(
            fields(json!({"optimizer": {"name": "adagrad"}})),
            ["params.optimizer.name"]
        );
        assert_eq!(
            fields(json!({"optimizer": {"name": "sgd", "beta1": 0.9}})),
            ["params.optimizer.beta1"]
        );
        assert_eq!(
            fields(json!({"optimizer": {"name": "adam", "beta2": 1.0}})),
            ["params.optimizer.beta2"]
        );
    }
}
