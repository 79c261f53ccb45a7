//! The exact GELU as torch writes it without the opset-20 `Gelu` op:
//! `Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)`, with the constant on either side of
//! each binary node, `Mul(x, 1/√2)` for the Div, and the two Muls in either order.

use std::collections::HashSet;
use std::f32::consts::{FRAC_1_SQRT_2, SQRT_2};

use super::graph::Graph;

/// A matched decomposition: its nodes (Erf among them) and the value it makes.
pub(super) struct ErfGelu {
    pub nodes: Vec<usize>,
    pub erf: usize,
    pub output: String,
}

/// Matches the decomposition applied to `x`, whose chain consumers are `users`.
pub(super) fn match_erf_gelu(
    graph: &Graph,
    needed: &HashSet<usize>,
    x: &str,
    users: &[usize],
) -> Option<ErfGelu> {
    let op = |i: usize, name: &str| graph.is_op(i, name);
    let out = |i: usize| graph.output(i);
    let near = |name: &str, target: f32| {
        graph
            .scalar(name)
            .is_some_and(|v| (v - target).abs() <= 1e-4 * target.abs())
    };
    // The one chain node reading `value`.
    let sole = |value: &str| graph.sole_consumer(value, needed);

    let scaled = *users.iter().find(|&&i| {
        let n = graph.node(i);
        (op(i, "Div") && n.input.len() == 2 && n.input[0] == x && near(&n.input[1], SQRT_2))
            || (op(i, "Mul") && other_operand(graph, i, x).is_some_and(|c| near(c, FRAC_1_SQRT_2)))
    })?;
    let erf = sole(out(scaled)?)?;
    if !op(erf, "Erf") || graph.node(erf).input.first().map(String::as_str) != out(scaled) {
        return None;
    }
    let plus_one = sole(out(erf)?)?;
    if !op(plus_one, "Add")
        || !other_operand(graph, plus_one, out(erf)?).is_some_and(|c| near(c, 1.0))
    {
        return None;
    }
    let m1 = sole(out(plus_one)?)?;
    let other = other_operand(graph, m1, out(plus_one)?).filter(|_| op(m1, "Mul"))?;
    let (nodes, output, x_users) = if other == x {
        // Mul(x, 1 + erf) then Mul(·, 0.5).
        let m2 = sole(out(m1)?)?;
        let ok = op(m2, "Mul") && other_operand(graph, m2, out(m1)?).is_some_and(|c| near(c, 0.5));
        ok.then_some((
            vec![scaled, erf, plus_one, m1, m2],
            out(m2)?,
            vec![scaled, m1],
        ))?
    } else if near(other, 0.5) {
        // Mul(1 + erf, 0.5) then Mul(x, ·).
        let m2 = sole(out(m1)?)?;
        let ok = op(m2, "Mul") && other_operand(graph, m2, out(m1)?) == Some(x);
        ok.then_some((
            vec![scaled, erf, plus_one, m1, m2],
            out(m2)?,
            vec![scaled, m2],
        ))?
    } else {
        // Mul(x, 0.5) then Mul(·, 1 + erf).
        let half = graph.producer(other)?;
        let ok = op(half, "Mul") && other_operand(graph, half, x).is_some_and(|c| near(c, 0.5));
        ok.then_some((
            vec![scaled, erf, plus_one, half, m1],
            out(m1)?,
            vec![scaled, half],
        ))?
    };
    let mut expected = x_users;
    let mut actual = users.to_vec();
    expected.sort_unstable();
    actual.sort_unstable();
    (expected == actual).then(|| ErfGelu {
        nodes,
        erf,
        output: output.to_string(),
    })
}

/// The other input of a two-input node one of whose inputs is `known`.
fn other_operand<'a>(graph: &Graph<'a>, i: usize, known: &str) -> Option<&'a str> {
    match graph.node(i).input.as_slice() {
        [a, b] if a == known => Some(b.as_str()),
        [a, b] if b == known => Some(a.as_str()),
        _ => None,
    }
}
