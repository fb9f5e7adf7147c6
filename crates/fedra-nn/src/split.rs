//! Pieces for split learning: a forward pass kept for a later backward
//! pass from an *injected* output gradient ([`Mlp::forward_tape`],
//! [`Tape::backward`]), the loss gradient with respect to the model's
//! *input* as well as its parameters ([`Mlp::gradient_with_input`]), and
//! the end-to-end reference: bottoms → concatenation → top → loss in one
//! autodiff graph ([`joint_gradient`]).
//!
//! Gradient injection: the party without labels back-propagates
//! `Σ (output ⊙ received_gradient)`, whose gradient with respect to every
//! parameter and input equals the chain rule through the other party's
//! model; the party with labels treats the received activations as a leaf
//! input and sends back that leaf's gradient.

use candle_core::{DType, Device, Tensor, Var};

use crate::error::{NnError, Result, backend, check_finite};
use crate::mlp::Mlp;
use crate::spec::MlpSpec;

/// Parameter and input gradients of one backward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// Gradient with respect to the flat parameters ([`Mlp::params`] order).
    pub params: Vec<f32>,
    /// Gradient with respect to the input, row-major `rows × inputs`.
    pub input: Vec<f32>,
}

/// A forward pass of an [`Mlp`] kept for one backward pass (see
/// [`Mlp::forward_tape`]). It holds the autodiff graph (activations of
/// every layer), so drop it once the backward pass is done.
pub struct Tape {
    spec: MlpSpec,
    layout: Vec<crate::ParamInfo>,
    num_params: usize,
    vars: Vec<Var>,
    input: Var,
    output: Tensor,
    out: Vec<f32>,
    rows: usize,
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tape")
            .field("rows", &self.rows)
            .field("outputs", &self.spec.outputs)
            .finish()
    }
}

impl Tape {
    /// The outputs, row-major `rows × outputs` (after the output
    /// activation, if the spec has one).
    pub fn output(&self) -> &[f32] {
        &self.out
    }

    /// Rows of the pass.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Back-propagates `grad_output` (`∂L/∂output`, row-major
    /// `rows × outputs`, finite) and returns the gradients of `L` with
    /// respect to the parameters and the input.
    pub fn backward(&self, grad_output: &[f32]) -> Result<Gradients> {
        let expected = self.rows * self.spec.outputs;
        if grad_output.len() != expected {
            return Err(NnError::Shape {
                what: "output gradient (rows × outputs)",
                expected,
                got: grad_output.len(),
            });
        }
        check_finite("output gradient", grad_output)?;
        let g = Tensor::from_slice(grad_output, (self.rows, self.spec.outputs), &Device::Cpu)
            .map_err(backend("output gradient tensor"))?;
        let surrogate = self
            .output
            .mul(&g)
            .and_then(|t| t.sum_all())
            .map_err(backend("injected loss"))?;
        let grads = surrogate.backward().map_err(backend("backward"))?;
        collect(
            &grads,
            &self.layout,
            self.num_params,
            &self.vars,
            &self.input,
            self.rows * self.spec.inputs,
        )
    }
}

/// Flat parameter gradients and the input gradient from candle's store.
fn collect(
    grads: &candle_core::backprop::GradStore,
    layout: &[crate::ParamInfo],
    num_params: usize,
    vars: &[Var],
    input: &Var,
    input_len: usize,
) -> Result<Gradients> {
    let mut params = vec![0f32; num_params];
    for (p, v) in layout.iter().zip(vars) {
        if let Some(g) = grads.get(v.as_tensor()) {
            let g = g
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(backend("gradient"))?;
            params[p.offset..p.offset + p.len()].copy_from_slice(&g);
        }
    }
    let input = match grads.get(input.as_tensor()) {
        Some(g) => g
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(backend("input gradient"))?,
        None => vec![0f32; input_len],
    };
    Ok(Gradients { params, input })
}

impl Mlp {
    /// The forward pass of `rows` rows of `x`, kept for one
    /// [`Tape::backward`] from an injected output gradient (the bottom
    /// model of split learning). The input is a leaf of the graph, so the
    /// backward pass also yields `∂L/∂x` (e.g. for embedding rows gathered
    /// into `x` outside the graph).
    pub fn forward_tape(&self, x: &[f32], rows: usize) -> Result<Tape> {
        self.check_x(x, rows)?;
        let (vars, ws, bs) = self.tensors(true)?;
        let input = Var::from_slice(x, (rows, self.spec().inputs), &Device::Cpu)
            .map_err(backend("input tensor"))?;
        let output = self
            .forward_t(input.as_tensor(), &ws, &bs)
            .map_err(backend("forward"))?;
        let out = output
            .flatten_all()
            .and_then(|t| t.to_dtype(DType::F32))
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(backend("forward output"))?;
        Ok(Tape {
            spec: self.spec().clone(),
            layout: self.layout().to_vec(),
            num_params: self.num_params(),
            vars,
            input,
            output,
            out,
            rows,
        })
    }

    /// The mean loss over the rows and its gradient with respect to the
    /// flat parameters **and the input** `x` (the top model of split
    /// learning: the input gradient is what goes back to the parties whose
    /// outputs were concatenated into `x`).
    pub fn gradient_with_input(
        &self,
        x: &[f32],
        y: &[f32],
        rows: usize,
    ) -> Result<(f32, Gradients)> {
        self.check_x(x, rows)?;
        self.check_y(y, rows)?;
        let (vars, ws, bs) = self.tensors(true)?;
        let input = Var::from_slice(x, (rows, self.spec().inputs), &Device::Cpu)
            .map_err(backend("input tensor"))?;
        let z = self
            .forward_t(input.as_tensor(), &ws, &bs)
            .map_err(backend("forward"))?;
        let loss = self.loss_t(&z, y, rows).map_err(backend("loss"))?;
        let grads = loss.backward().map_err(backend("backward"))?;
        let g = collect(
            &grads,
            self.layout(),
            self.num_params(),
            &vars,
            &input,
            x.len(),
        )?;
        let loss = loss.to_scalar::<f32>().map_err(backend("loss"))?;
        Ok((loss, g))
    }
}

/// One bottom model of [`joint_gradient`] with its input rows.
#[derive(Debug, Clone, Copy)]
pub struct BottomInput<'a> {
    /// The model.
    pub model: &'a Mlp,
    /// Its input, row-major `rows × inputs`.
    pub x: &'a [f32],
}

/// The result of [`joint_gradient`].
#[derive(Debug, Clone, PartialEq)]
pub struct JointGradients {
    /// The mean loss.
    pub loss: f32,
    /// Per bottom model, in the order given: parameter and input gradients.
    pub bottoms: Vec<Gradients>,
    /// The top model's parameter gradient (its `input` gradient is the
    /// concatenation of the bottoms' output gradients, row-major).
    pub top: Gradients,
}

/// The centralized reference of split learning: the bottoms' outputs are
/// concatenated column-wise (in the order given) into the top model's
/// input, and the mean loss of the top model is differentiated end to end
/// in **one** autodiff graph. The top model's `inputs` must equal the sum
/// of the bottoms' `outputs`.
pub fn joint_gradient(
    bottoms: &[BottomInput<'_>],
    top: &Mlp,
    y: &[f32],
    rows: usize,
) -> Result<JointGradients> {
    let total: usize = bottoms.iter().map(|b| b.model.spec().outputs).sum();
    if total != top.spec().inputs {
        return Err(NnError::Shape {
            what: "top inputs (sum of bottom outputs)",
            expected: top.spec().inputs,
            got: total,
        });
    }
    if bottoms.is_empty() {
        return Err(NnError::config("bottoms", "at least one bottom model"));
    }
    top.check_y(y, rows)?;
    let dev = Device::Cpu;
    let mut parts = Vec::with_capacity(bottoms.len());
    let mut state = Vec::with_capacity(bottoms.len());
    for b in bottoms {
        b.model.check_x(b.x, rows)?;
        let (vars, ws, bs) = b.model.tensors(true)?;
        let input = Var::from_slice(b.x, (rows, b.model.spec().inputs), &dev)
            .map_err(backend("input tensor"))?;
        let out = b
            .model
            .forward_t(input.as_tensor(), &ws, &bs)
            .map_err(backend("bottom forward"))?;
        parts.push(out);
        state.push((vars, input));
    }
    // candle keeps gradients of leaves only: a zero leaf added to the
    // concatenation exposes ∂L/∂cut.
    let probe = Var::zeros((rows, total), DType::F32, &dev).map_err(backend("probe"))?;
    let cat = Tensor::cat(&parts, 1)
        .and_then(|c| c.add(probe.as_tensor()))
        .map_err(backend("concatenate"))?;
    let (tvars, tws, tbs) = top.tensors(true)?;
    let z = top
        .forward_t(&cat, &tws, &tbs)
        .map_err(backend("top forward"))?;
    let loss = top.loss_t(&z, y, rows).map_err(backend("loss"))?;
    let grads = loss.backward().map_err(backend("backward"))?;
    let mut out = Vec::with_capacity(bottoms.len());
    for (b, (vars, input)) in bottoms.iter().zip(&state) {
        out.push(collect(
            &grads,
            b.model.layout(),
            b.model.num_params(),
            vars,
            input,
            b.x.len(),
        )?);
    }
    let cat_grad = match grads.get(probe.as_tensor()) {
        Some(g) => g
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(backend("cut gradient"))?,
        None => vec![0f32; rows * total],
    };
    let mut top_g = collect(
        &grads,
        top.layout(),
        top.num_params(),
        &tvars,
        &Var::zeros((1, 1), DType::F32, &dev).map_err(backend("placeholder"))?,
        0,
    )?;
    top_g.input = cat_grad;
    Ok(JointGradients {
        loss: loss.to_scalar::<f32>().map_err(backend("loss"))?,
        bottoms: out,
        top: top_g,
    })
}
