//! A Functional model is accepted only when it is a chain: each layer called once, on
//! the layer before it, from one input to one output. That is exactly what kiln's
//! layer list can express; branches, merges and shared layers are refused by name.

use super::config::{LayerConfig, ModelBody, endpoint_names, inbound_names};
use super::{invalid, layer_label};
use kiln_nn::validation::Invalid;

/// Checks that `body.layers`, in order, form a chain from the first to the last.
pub fn check_chain(body: &ModelBody) -> Result<(), Invalid> {
    let layers = &body.layers;
    let (Some(first), Some(last)) = (layers.first(), layers.last()) else {
        return Err(invalid("config.json: the model has no layers"));
    };
    for (i, layer) in layers.iter().enumerate() {
        let reads = |node| {
            let mut names = Vec::new();
            inbound_names(node, &mut names);
            names
        };
        match (i, layer.inbound_nodes.as_slice()) {
            (0, []) => {}
            (0, nodes) => {
                return Err(refuse(
                    layer,
                    format!(
                        "reads {:?}, but the first layer must be the input",
                        reads(&nodes[0])
                    ),
                ));
            }
            (_, []) => return Err(refuse(layer, "is not connected to the layer before it")),
            (_, [node]) => {
                let prev = layers[i - 1].name();
                let names = reads(node);
                if names != [prev] {
                    return Err(refuse(
                        layer,
                        format!(
                            "reads {names:?}; kiln imports a chain of layers, each reading the \
                             one before it (here \"{prev}\")"
                        ),
                    ));
                }
            }
            (_, nodes) => {
                return Err(refuse(
                    layer,
                    format!(
                        "is called {} times (a shared layer); kiln imports a chain of layers, \
                         each called once",
                        nodes.len()
                    ),
                ));
            }
        }
    }
    let ends = |v: &Option<serde_json::Value>, want: &str, what: &str| -> Result<(), Invalid> {
        let names = v.as_ref().map(endpoint_names).unwrap_or_default();
        if names.is_empty() || names == [want] {
            Ok(())
        } else {
            Err(invalid(format!(
                "config.json: the model's {what}s are {names:?}; kiln imports a chain with one \
                 {what}, \"{want}\""
            )))
        }
    };
    ends(&body.input_layers, first.name(), "input")?;
    ends(&body.output_layers, last.name(), "output")
}

fn refuse(layer: &LayerConfig, why: impl std::fmt::Display) -> Invalid {
    invalid(format!("{} {why}", layer_label(layer)))
}
