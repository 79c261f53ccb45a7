//! Parsing of `params.lr_schedule` into a [`Schedule`], separate from the optimizer it scales.

use serde_json::Value;

use super::fields::{Fields, non_negative_finite, positive_finite};
use kiln_nn::train::schedule::Schedule;
use kiln_nn::validation::Checker;

pub(super) fn schedule(value: Option<&Value>, epochs: u32, c: &mut Checker) -> Schedule {
    let path = "params.lr_schedule";
    let type_only;
    let value = match value {
        None => return Schedule::Constant,
        Some(Value::String(s)) => {
            type_only = serde_json::json!({ "type": s });
            &type_only
        }
        Some(v) => v,
    };
    let mut f = Fields::new(value, path, c);
    let kind: String = f.get("type", c).unwrap_or_else(|| "constant".into());
    let s = match kind.as_str() {
        "constant" => Schedule::Constant,
        "step" => {
            let step_size: u32 = f.get("step_size", c).unwrap_or(10);
            let gamma: f64 = f.get("gamma", c).unwrap_or(0.1);
            c.require(
                step_size >= 1,
                format!("{path}.step_size"),
                "must be at least 1",
            );
            positive_finite(c, format!("{path}.gamma"), gamma);
            Schedule::Step {
                step_size,
                gamma: gamma as f32,
            }
        }
        "cosine" => {
            let t_max: u32 = f.get("t_max", c).unwrap_or(epochs);
            let min_lr: f64 = f.get("min_lr", c).unwrap_or(0.0);
            c.require(t_max >= 1, format!("{path}.t_max"), "must be at least 1");
            non_negative_finite(c, format!("{path}.min_lr"), min_lr);
            Schedule::Cosine {
                t_max,
                min_lr: min_lr as f32,
            }
        }
        other => {
            c.push(
                format!("{path}.type"),
                format!("unknown schedule {other:?}; expected constant, step or cosine"),
            );
            f.finish(&mut Checker::new());
            return Schedule::Constant;
        }
    };
    f.finish(c);
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::fields;

    #[test]
    fn bad_lr_schedules_each_name_their_field() {
        assert_eq!(
            fields(json!({"lr_schedule": {"type": "step", "step_size": 0}})),
            ["params.lr_schedule.step_size"]
        );
        assert_eq!(
            fields(json!({"lr_schedule": "exponential"})),
            ["params.lr_schedule.type"]
        );
    }
}
