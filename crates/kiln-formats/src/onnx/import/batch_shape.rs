//! `x.view(x.size(0), -1)` as the TorchScript exporter writes it: `Shape(x)` →
//! `Gather(·, 0)` → `Unsqueeze(·, 0)` → `Concat([batch], [-1])` → `Reshape(x, ·)`. The
//! shape depends on nothing but the batch size, so kiln folds it to a constant whose
//! batch entry is 0 ("copy the input's batch"), as a constant-shape `Reshape` writes it.

use std::collections::HashSet;

use super::graph::Graph;
use super::tensor;

/// A matched shape computation: its nodes, the Reshape it feeds and the folded shape.
pub(super) struct BatchReshape {
    pub nodes: Vec<usize>,
    pub reshape: usize,
    pub shape: Vec<i64>,
}

/// Matches the computation on `x`, whose chain consumers are `users` (a `Shape` and the
/// `Reshape` it sizes).
pub(super) fn match_batch_reshape(
    graph: &Graph,
    needed: &HashSet<usize>,
    x: &str,
    users: &[usize],
) -> Option<BatchReshape> {
    let op = |i: usize, name: &str| graph.is_op(i, name);
    let out = |i: usize| graph.output(i);
    let sole = |value: &str| graph.sole_consumer(value, needed);
    let ints = |name: &str| {
        graph
            .constant(name)
            .and_then(|t| tensor::ints(t, "").ok())
            .map(|v| v.values)
    };
    let int_attr = |i: usize, name: &str| {
        graph
            .node(i)
            .attribute
            .iter()
            .find(|a| a.name() == name)
            .map(|a| a.i())
    };

    let [a, b] = users else { return None };
    let (shape, reshape) = if op(*a, "Shape") { (*a, *b) } else { (*b, *a) };
    let shape_node = graph.node(shape);
    if !op(shape, "Shape")
        || !op(reshape, "Reshape")
        || shape_node.input.first().map(String::as_str) != Some(x)
        || graph.node(reshape).input.first().map(String::as_str) != Some(x)
        || shape_node
            .attribute
            .iter()
            .any(|a| a.name() != "start" || a.i() != 0)
    {
        return None;
    }
    // Gather(shape, 0) on axis 0: the batch size, a scalar (or [1] for indices [0]).
    let gather = sole(out(shape)?)?;
    let g = graph.node(gather);
    if !op(gather, "Gather")
        || g.input.first().map(String::as_str) != out(shape)
        || int_attr(gather, "axis").unwrap_or(0) != 0
        || ints(g.input.get(1)?)? != [0]
    {
        return None;
    }
    let mut nodes = vec![shape, gather];
    let mut batch = out(gather)?;
    let next = sole(batch)?;
    if op(next, "Unsqueeze") {
        let u = graph.node(next);
        let axes = match u.input.get(1) {
            Some(name) => ints(name)?,
            None => u
                .attribute
                .iter()
                .find(|a| a.name() == "axes")?
                .ints
                .clone(),
        };
        if axes != [0] || u.input.first().map(String::as_str) != Some(batch) {
            return None;
        }
        nodes.push(next);
        batch = out(next)?;
    }
    // Concat on axis 0 of the batch and constant sizes.
    let concat = sole(batch)?;
    if !op(concat, "Concat") || int_attr(concat, "axis") != Some(0) {
        return None;
    }
    let mut folded = Vec::new();
    for part in &graph.node(concat).input {
        if part == batch {
            folded.push(0);
        } else {
            folded.extend(ints(part)?);
        }
    }
    nodes.push(concat);
    if graph.node(reshape).input.get(1).map(String::as_str) != out(concat)
        || sole(out(concat)?)? != reshape
    {
        return None;
    }
    Some(BatchReshape {
        nodes,
        reshape,
        shape: folded,
    })
}
