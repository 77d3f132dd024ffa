//! Dense layers handed to a [`DenseBackend`]: in the component, the host's native kernels
//! (`wasmflow:plugin/tensor`), where the same products run 3–4× faster than tract's wasm
//! kernels (128-bit SIMD, no fused multiply-add).
//!
//! [`offload`] rewrites a decluttered tract graph before it is optimized: each float32 matrix
//! product of a data tensor `[.., k]` by constant weights (`[k, n]`, or `[n, k]` as Gemm's
//! `transB` gives) becomes one [`HostDense`] op, with the bias add and the ReLU that follow it
//! (Gemm's `C`, a Relu node) folded in when the graph has them. Everything else stays tract's.
//! A layer the backend refuses (over the memory limit, say) stays tract's too.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// Makes layers: `weights` holds `k·n` values row-major (row i: input i's weights).
pub trait DenseBackend: Send + Sync {
    fn create(
        &self,
        k: usize,
        n: usize,
        weights: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: bool,
    ) -> Result<Arc<dyn DenseLayer>, String>;
}

/// A layer made by a [`DenseBackend`]: `rows` rows of k values in, `rows·n` values out.
pub trait DenseLayer: Send + Sync {
    fn apply(&self, rows: usize, input: &[f32]) -> Result<Vec<f32>, String>;
}

/// The tract op standing for one layer.
#[derive(Clone)]
pub struct HostDense {
    layer: Arc<dyn DenseLayer>,
    k: usize,
    n: usize,
    bias: bool,
    relu: bool,
}

impl fmt::Debug for HostDense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HostDense({}x{}{}{})",
            self.k,
            self.n,
            if self.bias { ", bias" } else { "" },
            if self.relu { ", relu" } else { "" }
        )
    }
}

impl PartialEq for HostDense {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.layer, &other.layer)
    }
}

impl Eq for HostDense {}

impl Op for HostDense {
    fn name(&self) -> StaticName {
        "HostDense".into()
    }

    op_as_typed_op!();
}

impl EvalOp for HostDense {
    // Never folded as a constant: the op is only made for a data input.
    not_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let shape = input.shape();
        ensure!(
            shape.last() == Some(&self.k),
            "host dense layer of {} inputs fed a tensor of shape {shape:?}",
            self.k
        );
        let rows: usize = shape[..shape.len() - 1].iter().product();
        let out = self
            .layer
            .apply(rows, input.try_as_plain_ram()?.as_slice::<f32>()?)
            .map_err(|e| format_err!("host dense layer: {e}"))?;
        let mut out_shape: TVec<usize> = shape.into();
        *out_shape.last_mut().unwrap() = self.n;
        // Takes the vector as the tensor's storage: no second copy of the output.
        let out = tract_ndarray::ArrayD::from_shape_vec(&*out_shape, out)?;
        Ok(tvec!(out.into_tensor().into_tvalue()))
    }
}

impl TypedOp for HostDense {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        ensure!(shape.last() == Some(&TDim::from(self.k)));
        *shape.last_mut().unwrap() = self.n.into();
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// Rewrites every layer of `model` it can to `backend`'s; returns how many.
pub fn offload(model: &mut TypedModel, backend: &dyn DenseBackend) -> TractResult<usize> {
    let mut done = 0;
    let mut refused: HashSet<usize> = HashSet::new();
    loop {
        let Some(found) = model
            .eval_order()?
            .into_iter()
            .filter(|id| !refused.contains(id))
            .find_map(|id| find_layer(model, id).transpose())
            .transpose()?
        else {
            break;
        };
        let Layer {
            einsum,
            data,
            last,
            k,
            n,
            weights,
            bias,
            relu,
            fused,
        } = found;
        let layer = match backend.create(k, n, weights, bias.clone(), relu) {
            Ok(layer) => layer,
            Err(_) => {
                refused.insert(einsum);
                continue;
            }
        };
        let op = HostDense {
            layer,
            k,
            n,
            bias: bias.is_some(),
            relu,
        };
        let mut patch = TypedModelPatch::new(format!("host dense {}", model.node(einsum).name));
        let tap = patch.tap_model(model, data)?;
        let name = model.node(last).name.clone();
        let wire = patch.wire_node(name, op, &[tap])?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), wire)?;
        for id in fused {
            patch.obliterate(id)?;
        }
        patch.apply(model)?;
        done += 1;
    }
    if done > 0 {
        model.compact()?;
    }
    Ok(done)
}

/// A product found in the graph, with what can be folded into it.
struct Layer {
    einsum: usize,
    data: OutletId,
    /// The node whose output the layer's output replaces.
    last: usize,
    k: usize,
    n: usize,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    relu: bool,
    fused: Vec<usize>,
}

/// Whether node `id` is `data[.., k] · W` with `W` a float32 constant; with the bias add and
/// ReLU after it when each is the sole user of what comes before.
fn find_layer(model: &TypedModel, id: usize) -> TractResult<Option<Layer>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if op.q_params.is_some() || op.operating_dt != f32::datum_type() || node.inputs.len() != 2 {
        return Ok(None);
    }
    let (data, weights) = (node.inputs[0], node.inputs[1]);
    let data_fact = model.outlet_fact(data)?;
    let weights_fact = model.outlet_fact(weights)?;
    if data_fact.datum_type != f32::datum_type() || data_fact.konst.is_some() {
        return Ok(None);
    }
    let Some(w) = weights_fact.konst.as_ref() else {
        return Ok(None);
    };
    if w.datum_type() != f32::datum_type() || w.rank() != 2 {
        return Ok(None);
    }
    // The expression: `<prefix>k,<kn or nk>-><prefix>n`, one letter per axis.
    let expr = op.axes.to_string();
    let Some((ins, out)) = expr.split_once("->") else {
        return Ok(None);
    };
    let Some((a, b)) = ins.split_once(',') else {
        return Ok(None);
    };
    let (a, b, c): (Vec<char>, Vec<char>, Vec<char>) = (
        a.chars().collect(),
        b.chars().collect(),
        out.chars().collect(),
    );
    let Some((&k_axis, prefix)) = a.split_last() else {
        return Ok(None);
    };
    let Some((&n_axis, out_prefix)) = c.split_last() else {
        return Ok(None);
    };
    let transposed = match b.as_slice() {
        [x, y] if *x == k_axis && *y == n_axis => false,
        [x, y] if *x == n_axis && *y == k_axis => true,
        _ => return Ok(None),
    };
    let distinct = |s: &[char]| s.iter().collect::<HashSet<_>>().len() == s.len();
    if prefix != out_prefix
        || !distinct(&a)
        || !distinct(&c)
        || k_axis == n_axis
        || prefix.contains(&n_axis)
        || c.contains(&k_axis)
    {
        return Ok(None);
    }
    let (k, n) = if transposed {
        (w.shape()[1], w.shape()[0])
    } else {
        (w.shape()[0], w.shape()[1])
    };
    if data_fact.shape.last() != Some(&TDim::from(k)) {
        return Ok(None);
    }
    let view = w.try_as_plain_ram()?;
    let values = view.as_slice::<f32>()?;
    let weights = if transposed {
        // [n, k] → [k, n].
        let mut t = vec![0f32; k * n];
        for (j, row) in values.chunks_exact(k.max(1)).enumerate().take(n) {
            for (i, v) in row.iter().enumerate() {
                t[i * n + j] = *v;
            }
        }
        t
    } else {
        values.to_vec()
    };

    let rank = data_fact.rank();
    let mut layer = Layer {
        einsum: id,
        data,
        last: id,
        k,
        n,
        weights,
        bias: None,
        relu: false,
        fused: vec![id],
    };
    if let Some((add, bias)) = next_with_constant(model, layer.last, "Add")?
        && let Some(bias) = row_vector(&bias, n, rank)
    {
        layer.bias = Some(bias);
        layer.last = add;
        layer.fused.push(add);
    }
    if let Some((max, zero)) = next_with_constant(model, layer.last, "Max")?
        && zero.len() == 1
        && zero.rank() <= rank
        && zero.cast_to_scalar::<f32>().ok() == Some(0.0)
    {
        layer.relu = true;
        layer.last = max;
        layer.fused.push(max);
    }
    Ok(Some(layer))
}

/// The node after `id` when it is its sole user, a binary op named `name` whose other operand
/// is a float32 constant: (node, constant).
fn next_with_constant(
    model: &TypedModel,
    id: usize,
    name: &str,
) -> TractResult<Option<(usize, Arc<Tensor>)>> {
    let outlet = OutletId::new(id, 0);
    if model.outputs.contains(&outlet) {
        return Ok(None);
    }
    let Some(next) = model.single_succ(id)? else {
        return Ok(None);
    };
    let Some(op) = next.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if op.0.name() != name || next.inputs.len() != 2 || op.1.is_some() {
        return Ok(None);
    }
    let other = if next.inputs[0] == outlet {
        next.inputs[1]
    } else {
        next.inputs[0]
    };
    if other == outlet {
        return Ok(None);
    }
    let fact = model.outlet_fact(other)?;
    if fact.datum_type != f32::datum_type() {
        return Ok(None);
    }
    // The output must keep the product's shape: no broadcasting past it.
    let out = model.outlet_fact(OutletId::new(next.id, 0))?;
    if out.shape != model.outlet_fact(outlet)?.shape {
        return Ok(None);
    }
    Ok(fact
        .konst
        .clone()
        .or_else(|| fact.uniform.clone())
        .map(|k| (next.id, k)))
}

/// `t`'s values when it is `n` values along the last axis (shape `[n]`, `[1, n]`, …) and adds to
/// a tensor of rank `rank` without broadcasting it.
fn row_vector(t: &Tensor, n: usize, rank: usize) -> Option<Vec<f32>> {
    let shape = t.shape();
    let (&last, leading) = shape.split_last()?;
    if last != n || shape.len() > rank || leading.iter().any(|&d| d != 1) {
        return None;
    }
    Some(t.as_plain_ram()?.as_slice::<f32>().ok()?.to_vec())
}
