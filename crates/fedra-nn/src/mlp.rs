//! [`Mlp`]: a multi-layer perceptron whose parameters live in one flat
//! `Vec<f32>` (the source of truth, in the stable [`ParamInfo`] order);
//! candle builds the graph from it for each forward/backward pass.
//!
//! Keeping the flat vector as the model is what FL needs: `params_flat`
//! and `set_params_flat` are plain copies (round trip exact), gradients
//! come back flat in the same order (so FedProx / SCAFFOLD corrections and
//! DP clipping apply directly), and the optimisers ([`crate::Optimizer`])
//! are plain loops with checkpointable state. The cost is one copy of the
//! parameters into tensors and of the gradients out of them per step,
//! negligible next to the matrix products for the models this is for.

use std::fmt;

use candle_core::{D, DType, Device, Tensor, Var};
use fedra_dp::{add_gaussian_noise, clip_l2};
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result, backend, check_finite};
use crate::optim::Optimizer;
use crate::spec::{Activation, Init, LossKind, MlpSpec};

/// Rows per forward pass in [`Mlp::predict`] (bounds the activations' memory).
const PREDICT_CHUNK: usize = 8192;

/// Where one named tensor sits in the flat parameter vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// `layerNNN.bias` or `layerNNN.weight` (layer 0 is the input layer;
    /// zero-padded so that the byte order of the names is the layer order).
    pub name: String,
    /// `[out]` for a bias, `[in, out]` for a weight (row-major).
    pub shape: Vec<usize>,
    /// Offset in the flat vector.
    pub offset: usize,
}

impl ParamInfo {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor is empty (never, for a valid spec).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The parameter layout of a spec: tensors sorted by name, each row-major.
fn layout(spec: &MlpSpec) -> Vec<ParamInfo> {
    let widths = spec.widths();
    let mut named: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, w) in widths.windows(2).enumerate() {
        named.push((format!("layer{i:03}.bias"), vec![w[1]]));
        named.push((format!("layer{i:03}.weight"), vec![w[0], w[1]]));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut offset = 0;
    named
        .into_iter()
        .map(|(name, shape)| {
            let info = ParamInfo {
                name,
                shape,
                offset,
            };
            offset += info.len();
            info
        })
        .collect()
}

/// Differential-privacy settings of one DP-SGD step with micro-batch
/// clipping (see [`Mlp::dp_gradient`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpSgd {
    /// L2 bound `C` on each micro-batch's mean gradient, finite and `> 0`.
    pub clip_norm: f64,
    /// Noise multiplier `σ`: the sum of clipped gradients gets `N(0, σ²C²)`.
    pub noise_multiplier: f64,
    /// Rows per micro-batch, `>= 1` (1 = per-example clipping).
    pub microbatch_size: usize,
}

/// A multi-layer perceptron (see the [module docs](self)).
#[derive(Clone)]
pub struct Mlp {
    spec: MlpSpec,
    layout: Vec<ParamInfo>,
    params: Vec<f32>,
}

impl fmt::Debug for Mlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mlp")
            .field("spec", &self.spec)
            .field("num_params", &self.params.len())
            .finish()
    }
}

/// The uniform `[0, 1)` float from 24 random bits.
fn unit(rng: &mut dyn RngCore) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
}

impl Mlp {
    /// A model with freshly initialised weights (see [`Init`]) drawn from
    /// `rng`; biases are zero. The same spec and generator state give the
    /// same weights (e.g. `ChaCha20Rng::seed_from_u64(seed)`); weights are
    /// drawn layer by layer, input layer first, each row-major.
    pub fn new(spec: MlpSpec, rng: &mut dyn RngCore) -> Result<Self> {
        spec.validate()?;
        let layout = layout(&spec);
        let n = layout.iter().map(ParamInfo::len).sum();
        let mut params = vec![0f32; n];
        let last = spec.hidden.len();
        for (i, w) in spec.widths().windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0] as f32, w[1] as f32);
            let he = match spec.init {
                Init::He => true,
                Init::Xavier => false,
                Init::Auto => i < last && spec.activation == Activation::Relu,
            };
            let bound = if he {
                (6.0 / fan_in).sqrt()
            } else {
                (6.0 / (fan_in + fan_out)).sqrt()
            };
            let name = format!("layer{i:03}.weight");
            let info = layout
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| NnError::config("layout", format!("{name} missing")))?;
            for v in &mut params[info.offset..info.offset + info.len()] {
                *v = (2.0 * unit(rng) - 1.0) * bound;
            }
        }
        Ok(Mlp {
            spec,
            layout,
            params,
        })
    }

    /// A model with the given flat parameters (e.g. from a checkpoint).
    pub fn from_params(spec: MlpSpec, params: &[f32]) -> Result<Self> {
        spec.validate()?;
        let layout = layout(&spec);
        let mut m = Mlp {
            params: vec![0f32; layout.iter().map(ParamInfo::len).sum()],
            spec,
            layout,
        };
        m.set_params_flat(params)?;
        Ok(m)
    }

    /// The spec.
    pub fn spec(&self) -> &MlpSpec {
        &self.spec
    }

    /// The named tensors in flat order (sorted by name).
    pub fn layout(&self) -> &[ParamInfo] {
        &self.layout
    }

    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// The parameters, flat, in [`Mlp::layout`] order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// A copy of the parameters, flat, in [`Mlp::layout`] order.
    pub fn params_flat(&self) -> Vec<f32> {
        self.params.clone()
    }

    /// Replaces the parameters (same length, finite); exact copy.
    pub fn set_params_flat(&mut self, params: &[f32]) -> Result<()> {
        if params.len() != self.params.len() {
            return Err(NnError::Shape {
                what: "flat parameters",
                expected: self.params.len(),
                got: params.len(),
            });
        }
        check_finite("flat parameters", params)?;
        self.params.copy_from_slice(params);
        Ok(())
    }

    /// Values per row of the targets: `outputs` for MSE, else 1.
    pub fn target_width(&self) -> usize {
        match self.spec.loss {
            LossKind::Mse => self.spec.outputs,
            _ => 1,
        }
    }

    pub(crate) fn check_x(&self, x: &[f32], rows: usize) -> Result<()> {
        if rows == 0 {
            return Err(NnError::Shape {
                what: "rows",
                expected: 1,
                got: 0,
            });
        }
        let expected = rows.checked_mul(self.spec.inputs).ok_or(NnError::Shape {
            what: "features (rows × inputs)",
            expected: usize::MAX,
            got: x.len(),
        })?;
        if x.len() != expected {
            return Err(NnError::Shape {
                what: "features (rows × inputs)",
                expected,
                got: x.len(),
            });
        }
        check_finite("features", x)
    }

    pub(crate) fn check_y(&self, y: &[f32], rows: usize) -> Result<()> {
        let expected = rows * self.target_width();
        if y.len() != expected {
            return Err(NnError::Shape {
                what: "targets",
                expected,
                got: y.len(),
            });
        }
        check_finite("targets", y)?;
        let bad = |reason| {
            move |(index, &value): (usize, &f32)| NnError::Target {
                index,
                value,
                reason,
            }
        };
        match self.spec.loss {
            LossKind::BinaryCrossEntropy => match y
                .iter()
                .enumerate()
                .find(|(_, v)| !(0.0..=1.0).contains(*v))
            {
                Some(e) => Err(bad("binary cross-entropy needs targets in [0, 1]")(e)),
                None => Ok(()),
            },
            LossKind::SoftmaxCrossEntropy => {
                let k = self.spec.outputs as f32;
                match y
                    .iter()
                    .enumerate()
                    .find(|(_, v)| v.fract() != 0.0 || **v < 0.0 || **v >= k)
                {
                    Some(e) => Err(bad("softmax cross-entropy needs class indices 0..outputs")(
                        e,
                    )),
                    None => Ok(()),
                }
            }
            LossKind::Mse => Ok(()),
        }
    }

    /// The parameter tensors (weights, biases per layer), as constants or
    /// as variables for autodiff.
    pub(crate) fn tensors(&self, trainable: bool) -> Result<(Vec<Var>, Vec<Tensor>, Vec<Tensor>)> {
        let dev = Device::Cpu;
        let mut vars = Vec::with_capacity(self.layout.len());
        let mut by_name = Vec::with_capacity(self.layout.len());
        for p in &self.layout {
            let slice = &self.params[p.offset..p.offset + p.len()];
            let t = if trainable {
                let v = Var::from_slice(slice, p.shape.as_slice(), &dev)
                    .map_err(backend("parameter tensor"))?;
                let t = v.as_tensor().clone();
                vars.push(v);
                t
            } else {
                Tensor::from_slice(slice, p.shape.as_slice(), &dev)
                    .map_err(backend("parameter tensor"))?
            };
            by_name.push((p.name.as_str(), t));
        }
        let layers = self.spec.hidden.len() + 1;
        let mut ws = Vec::with_capacity(layers);
        let mut bs = Vec::with_capacity(layers);
        for i in 0..layers {
            let find = |name: String| {
                by_name
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, t)| t.clone())
                    .ok_or_else(|| NnError::config("layout", format!("{name} missing")))
            };
            ws.push(find(format!("layer{i:03}.weight"))?);
            bs.push(find(format!("layer{i:03}.bias"))?);
        }
        Ok((vars, ws, bs))
    }

    /// Logits `(rows, outputs)`.
    pub(crate) fn forward_t(
        &self,
        x: &Tensor,
        ws: &[Tensor],
        bs: &[Tensor],
    ) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        let last = ws.len() - 1;
        for (i, (w, b)) in ws.iter().zip(bs).enumerate() {
            h = h.matmul(w)?.broadcast_add(b)?;
            let act = if i < last {
                Some(self.spec.activation)
            } else {
                self.spec.output_activation
            };
            h = activate(h, act)?;
        }
        Ok(h)
    }

    /// The mean loss of logits `z` against targets `y` (validated).
    pub(crate) fn loss_t(&self, z: &Tensor, y: &[f32], rows: usize) -> candle_core::Result<Tensor> {
        let dev = Device::Cpu;
        match self.spec.loss {
            LossKind::BinaryCrossEntropy => {
                let y = Tensor::from_slice(y, (rows, 1), &dev)?;
                // max(z, 0) − z·y + ln(1 + e^{−|z|}), stable for any z.
                let soft = z.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
                (z.relu()? - (z * y)?)?.add(&soft)?.mean_all()
            }
            LossKind::SoftmaxCrossEntropy => {
                let k = self.spec.outputs;
                let mut onehot = vec![0f32; rows * k];
                for (r, &c) in y.iter().enumerate() {
                    onehot[r * k + c as usize] = 1.0;
                }
                let onehot = Tensor::from_vec(onehot, (rows, k), &dev)?;
                let mx = z.max_keepdim(D::Minus1)?.detach();
                let shifted = z.broadcast_sub(&mx)?;
                let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
                let logp = shifted.broadcast_sub(&lse)?;
                (logp * onehot)?.sum_all()?.affine(-1.0 / rows as f64, 0.0)
            }
            LossKind::Mse => {
                let y = Tensor::from_slice(y, (rows, self.spec.outputs), &dev)?;
                (z - y)?.sqr()?.mean_all()
            }
        }
    }

    /// The raw outputs (logits for the classification losses), row-major
    /// `rows × outputs`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        self.check_x(x, rows)?;
        let (_, ws, bs) = self.tensors(false)?;
        let mut out = Vec::with_capacity(rows * self.spec.outputs);
        let n_in = self.spec.inputs;
        for chunk in x.chunks(PREDICT_CHUNK * n_in) {
            let r = chunk.len() / n_in;
            let xt = Tensor::from_slice(chunk, (r, n_in), &Device::Cpu)
                .map_err(backend("input tensor"))?;
            let z = self.forward_t(&xt, &ws, &bs).map_err(backend("forward"))?;
            let z = z
                .flatten_all()
                .and_then(|t| t.to_dtype(DType::F32))
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(backend("forward output"))?;
            out.extend_from_slice(&z);
        }
        Ok(out)
    }

    /// Predictions for `rows` rows of row-major features `x`: `P(y = 1)`
    /// per row (binary cross-entropy), class probabilities row-major
    /// (softmax), or the outputs (MSE).
    pub fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let mut z = self.forward(x, rows)?;
        match self.spec.loss {
            LossKind::BinaryCrossEntropy => z.iter_mut().for_each(|v| *v = sigmoid(*v)),
            LossKind::SoftmaxCrossEntropy => {
                for row in z.chunks_mut(self.spec.outputs) {
                    let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0f64;
                    for v in row.iter_mut() {
                        *v = (*v - mx).exp();
                        sum += f64::from(*v);
                    }
                    row.iter_mut()
                        .for_each(|v| *v = (f64::from(*v) / sum) as f32);
                }
            }
            LossKind::Mse => {}
        }
        Ok(z)
    }

    /// The mean loss over the rows.
    pub fn loss(&self, x: &[f32], y: &[f32], rows: usize) -> Result<f32> {
        self.check_x(x, rows)?;
        self.check_y(y, rows)?;
        let (_, ws, bs) = self.tensors(false)?;
        let xt = Tensor::from_slice(x, (rows, self.spec.inputs), &Device::Cpu)
            .map_err(backend("input tensor"))?;
        let z = self.forward_t(&xt, &ws, &bs).map_err(backend("forward"))?;
        self.loss_t(&z, y, rows)
            .and_then(|l| l.to_scalar::<f32>())
            .map_err(backend("loss"))
    }

    /// The mean loss over the rows and its gradient with respect to the
    /// flat parameters (same order as [`Mlp::params`]).
    pub fn gradient(&self, x: &[f32], y: &[f32], rows: usize) -> Result<(f32, Vec<f32>)> {
        self.check_x(x, rows)?;
        self.check_y(y, rows)?;
        self.gradient_unchecked(x, y, rows)
    }

    fn gradient_unchecked(&self, x: &[f32], y: &[f32], rows: usize) -> Result<(f32, Vec<f32>)> {
        let (vars, ws, bs) = self.tensors(true)?;
        let xt = Tensor::from_slice(x, (rows, self.spec.inputs), &Device::Cpu)
            .map_err(backend("input tensor"))?;
        let z = self.forward_t(&xt, &ws, &bs).map_err(backend("forward"))?;
        let loss = self.loss_t(&z, y, rows).map_err(backend("loss"))?;
        let grads = loss.backward().map_err(backend("backward"))?;
        let mut flat = vec![0f32; self.params.len()];
        for (p, v) in self.layout.iter().zip(&vars) {
            if let Some(g) = grads.get(v.as_tensor()) {
                let g = g
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(backend("gradient"))?;
                flat[p.offset..p.offset + p.len()].copy_from_slice(&g);
            }
        }
        let loss = loss.to_scalar::<f32>().map_err(backend("loss"))?;
        Ok((loss, flat))
    }

    /// Applies one optimiser step with a (possibly corrected) flat gradient.
    pub fn apply_gradient(&mut self, opt: &mut Optimizer, grad: &[f32]) -> Result<()> {
        let mut next = self.params.clone();
        opt.step(&mut next, grad)?;
        check_finite("parameters after the step", &next)?;
        self.params = next;
        Ok(())
    }

    /// One training step on a mini-batch: gradient of the mean loss, then
    /// `opt`. Returns the loss before the step.
    pub fn train_step(
        &mut self,
        opt: &mut Optimizer,
        x: &[f32],
        y: &[f32],
        rows: usize,
    ) -> Result<f32> {
        let (loss, grad) = self.gradient(x, y, rows)?;
        self.apply_gradient(opt, &grad)?;
        Ok(loss)
    }

    /// The DP-SGD gradient of a mini-batch with **micro-batch clipping**:
    /// the rows are split into consecutive micro-batches of
    /// `dp.microbatch_size` rows (the last may be shorter), the mean-loss
    /// gradient of each is clipped to L2 norm `C` ([`fedra_dp::clip_l2`]),
    /// the clipped gradients are summed, `N(0, σ²C²)` noise is added per
    /// coordinate ([`fedra_dp::add_gaussian_noise`], from `rng`, which
    /// must be a CSPRNG), and the result is divided by the number of
    /// micro-batches `⌈rows / m⌉` (public for a fixed batch size).
    ///
    /// Returns the mean loss (before noise; for logging only — it is not
    /// private) and the noisy gradient, to pass to
    /// [`Mlp::apply_gradient`]. Record each step in a
    /// [`fedra_dp::Accountant`] with `q = batch / dataset rows`, σ as given.
    ///
    /// **Cost:** one forward+backward per micro-batch, so with
    /// `microbatch_size = 1` a step costs about `rows` small steps (measured
    /// ≈ 16× a plain step at batch 64, see the crate docs) — for exact
    /// per-example clipping use [`Mlp::dp_gradient_per_example`] (ghost
    /// norms, one pass) instead. Larger micro-batches trade privacy
    /// resolution (the sensitivity is one micro-batch) for speed.
    pub fn dp_gradient(
        &self,
        x: &[f32],
        y: &[f32],
        rows: usize,
        dp: &DpSgd,
        rng: &mut impl CryptoRng,
    ) -> Result<(f32, Vec<f32>)> {
        self.check_x(x, rows)?;
        self.check_y(y, rows)?;
        if dp.microbatch_size == 0 {
            return Err(NnError::config(
                "dp.microbatch_size",
                "must be >= 1 (got 0)",
            ));
        }
        if !(dp.clip_norm.is_finite() && dp.clip_norm > 0.0) {
            return Err(NnError::config(
                "dp.clip_norm",
                format!("must be finite and > 0 (got {})", dp.clip_norm),
            ));
        }
        if !(dp.noise_multiplier.is_finite() && dp.noise_multiplier >= 0.0) {
            return Err(NnError::config(
                "dp.noise_multiplier",
                format!("must be finite and >= 0 (got {})", dp.noise_multiplier),
            ));
        }
        let (n_in, n_y) = (self.spec.inputs, self.target_width());
        let m = dp.microbatch_size;
        let mut sum = vec![0f64; self.params.len()];
        let mut loss_sum = 0f64;
        let mut micro = 0usize;
        for start in (0..rows).step_by(m) {
            let r = m.min(rows - start);
            let (loss, mut g) = self.gradient_unchecked(
                &x[start * n_in..(start + r) * n_in],
                &y[start * n_y..(start + r) * n_y],
                r,
            )?;
            clip_l2(&mut g, dp.clip_norm)?;
            for (s, v) in sum.iter_mut().zip(&g) {
                *s += f64::from(*v);
            }
            loss_sum += f64::from(loss) * r as f64;
            micro += 1;
        }
        add_gaussian_noise(&mut sum, dp.noise_multiplier * dp.clip_norm, rng)?;
        let grad = sum.iter().map(|s| (s / micro as f64) as f32).collect();
        Ok(((loss_sum / rows as f64) as f32, grad))
    }
}

impl Mlp {
    /// Exact **per-example** DP-SGD gradient by *ghost clipping*, in one
    /// forward and one backward pass: a zero leaf is added to every layer's
    /// pre-activation `z`, so the backward pass of the *summed* loss yields
    /// each example's `δ = ∂L_i/∂z`; example `i`'s gradient norm is
    /// `‖g_i‖² = Σ_layers ‖δ_i‖²·(‖a_i‖² + 1)` (`a_i` = the layer's input), its
    /// clip factor `c_i = min(1, C/‖g_i‖)`, and the clipped sum is
    /// `Σ_i c_i·g_i = (Aᵀ·diag(c)·Δ, Σ_i c_i·δ_i)` per layer. Then
    /// `N(0, σ²C²)` is added (from `rng`, a CSPRNG) and the sum is divided by
    /// `rows`.
    ///
    /// Equals [`Mlp::dp_gradient`] with `microbatch_size = 1` (up to float
    /// rounding) at about the cost of a plain step instead of one pass per
    /// example. `dp.microbatch_size` is ignored.
    pub fn dp_gradient_per_example(
        &self,
        x: &[f32],
        y: &[f32],
        rows: usize,
        dp: &DpSgd,
        rng: &mut impl CryptoRng,
    ) -> Result<(f32, Vec<f32>)> {
        self.check_x(x, rows)?;
        self.check_y(y, rows)?;
        if !(dp.clip_norm.is_finite() && dp.clip_norm > 0.0) {
            return Err(NnError::config(
                "dp.clip_norm",
                format!("must be finite and > 0 (got {})", dp.clip_norm),
            ));
        }
        if !(dp.noise_multiplier.is_finite() && dp.noise_multiplier >= 0.0) {
            return Err(NnError::config(
                "dp.noise_multiplier",
                format!("must be finite and >= 0 (got {})", dp.noise_multiplier),
            ));
        }
        let (loss, mut sum) = self
            .ghost_clipped_sum(x, y, rows, dp.clip_norm)
            .map_err(backend("ghost clipping"))?;
        add_gaussian_noise(&mut sum, dp.noise_multiplier * dp.clip_norm, rng)?;
        let grad = sum.iter().map(|s| (s / rows as f64) as f32).collect();
        Ok((loss, grad))
    }

    /// The mean loss and `Σ_i clip(g_i)` in layout order (see above).
    fn ghost_clipped_sum(
        &self,
        x: &[f32],
        y: &[f32],
        rows: usize,
        clip: f64,
    ) -> candle_core::Result<(f32, Vec<f64>)> {
        let dev = Device::Cpu;
        let (_, ws, bs) = self
            .tensors(false)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let last = ws.len() - 1;
        let mut inputs = Vec::with_capacity(ws.len());
        let mut leaves = Vec::with_capacity(ws.len());
        let mut h = Tensor::from_slice(x, (rows, self.spec.inputs), &dev)?;
        for (i, (w, b)) in ws.iter().zip(&bs).enumerate() {
            let out = b.dims1()?;
            let leaf = Var::zeros((rows, out), DType::F32, &dev)?;
            inputs.push(h.detach());
            let z = h.matmul(w)?.broadcast_add(b)?.add(leaf.as_tensor())?;
            leaves.push(leaf);
            h = if i < last {
                activate(z, Some(self.spec.activation))?
            } else {
                activate(z, self.spec.output_activation)?
            };
        }
        let mean = self.loss_t(&h, y, rows)?;
        let grads = mean.affine(rows as f64, 0.0)?.backward()?;
        let mut deltas = Vec::with_capacity(leaves.len());
        for leaf in &leaves {
            let d = match grads.get(leaf.as_tensor()) {
                Some(d) => d.clone(),
                None => leaf.as_tensor().zeros_like()?,
            };
            deltas.push(d);
        }
        // Per-example squared norms and clip factors.
        let mut norm2 = Tensor::zeros((rows, 1), DType::F32, &dev)?;
        for (a, d) in inputs.iter().zip(&deltas) {
            let a2 = a.sqr()?.sum_keepdim(1)?.affine(1.0, 1.0)?;
            norm2 = (norm2 + d.sqr()?.sum_keepdim(1)?.mul(&a2)?)?;
        }
        let factors: Vec<f32> = norm2
            .flatten_all()?
            .to_vec1::<f32>()?
            .into_iter()
            .map(|n2| {
                let n = f64::from(n2).sqrt();
                if n > clip { (clip / n) as f32 } else { 1.0 }
            })
            .collect();
        let c = Tensor::from_vec(factors, (rows, 1), &dev)?;
        let mut flat = vec![0f64; self.params.len()];
        for (i, (a, d)) in inputs.iter().zip(&deltas).enumerate() {
            let cd = d.broadcast_mul(&c)?;
            let gw = a
                .t()?
                .contiguous()?
                .matmul(&cd)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let gb = cd.sum(0)?.to_vec1::<f32>()?;
            for (name, g) in [
                (format!("layer{i:03}.weight"), gw),
                (format!("layer{i:03}.bias"), gb),
            ] {
                if let Some(p) = self.layout.iter().find(|p| p.name == name) {
                    for (o, v) in flat[p.offset..p.offset + p.len()].iter_mut().zip(&g) {
                        *o = f64::from(*v);
                    }
                }
            }
        }
        Ok((mean.to_scalar::<f32>()?, flat))
    }
}

/// Applies an optional activation.
pub(crate) fn activate(h: Tensor, act: Option<Activation>) -> candle_core::Result<Tensor> {
    match act {
        None => Ok(h),
        Some(Activation::Relu) => h.relu(),
        Some(Activation::Tanh) => h.tanh(),
    }
}

fn sigmoid(z: f32) -> f32 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}
