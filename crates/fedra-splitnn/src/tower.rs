//! The models: a party's [`BottomTower`] (sparse embeddings + dense
//! features → MLP → the cut-layer output of width `k`) and the label
//! holder's [`TopTower`] (concatenated cut outputs → MLP → loss).
//!
//! A bottom tower's MLP input per row is, in order, the embedding of every
//! sparse field (each id hashed with the field index into the field's
//! table; a multi-valued field's rows pooled by mean or sum, with the
//! pooling weight applied again when the gradient is summed back), then the
//! dense features. Embedding tables stay outside the
//! autodiff graph ([`crate::embedding`]); the MLP input is a leaf whose
//! gradient is summed back into the unique rows the batch touched.

use fedra_nn::{
    Activation, Gradients, LossKind, Mlp, MlpSpec, Optimizer, OptimizerConfig, OptimizerState, Tape,
};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

use crate::embedding::{SparseEmbedding, TableSpec, TableState, dedupe, mix64};
use crate::error::{Result, SplitError};

/// One party's rows: dense features (row-major) and, per row and sparse
/// field, a *bag* of ids (usually one; several for multi-valued fields,
/// pooled by [`BottomSpec::pooling`]; an empty bag embeds as zeros).
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    rows: usize,
    dense_width: usize,
    fields: usize,
    dense: Vec<f32>,
    /// CSR: the bag of `(row, field)` is `ids[offsets[r·fields + f]..offsets[r·fields + f + 1]]`.
    offsets: Vec<usize>,
    ids: Vec<u64>,
}

/// Most ids in one bag.
pub const MAX_BAG: usize = 1 << 16;

impl Features {
    /// `rows` rows of `dense_width` dense features (finite) and exactly one
    /// id per sparse field (any `u64`, e.g. from [`crate::hash_str`]),
    /// row-major `rows × fields`.
    pub fn new(
        rows: usize,
        dense_width: usize,
        dense: Vec<f32>,
        fields: usize,
        sparse: Vec<u64>,
    ) -> Result<Self> {
        if sparse.len() != rows.saturating_mul(fields) {
            return Err(SplitError::Data(format!(
                "sparse ids: {} values for {rows} rows × {fields} fields",
                sparse.len()
            )));
        }
        let offsets = (0..=sparse.len()).collect();
        Self::with_bags(rows, dense_width, dense, fields, offsets, sparse)
    }

    /// Like [`Features::new`] with multi-valued fields: the bag of row
    /// `r`, field `f` is `ids[offsets[r·fields + f]..offsets[r·fields + f +
    /// 1]]` (`offsets` non-decreasing, `rows·fields + 1` long, from 0 to
    /// `ids.len()`, bags of at most [`MAX_BAG`] ids).
    pub fn with_bags(
        rows: usize,
        dense_width: usize,
        dense: Vec<f32>,
        fields: usize,
        offsets: Vec<usize>,
        ids: Vec<u64>,
    ) -> Result<Self> {
        if dense.len() != rows.saturating_mul(dense_width) {
            return Err(SplitError::Data(format!(
                "dense features: {} values for {rows} rows × {dense_width}",
                dense.len()
            )));
        }
        if offsets.len() != rows.saturating_mul(fields).saturating_add(1)
            || offsets.first() != Some(&0)
            || offsets.last() != Some(&ids.len())
        {
            return Err(SplitError::Data(format!(
                "sparse offsets: {} values for {rows} rows × {fields} fields (must start at 0 and end at {})",
                offsets.len(),
                ids.len()
            )));
        }
        if let Some(i) = offsets
            .windows(2)
            .position(|w| w[1] < w[0] || w[1] - w[0] > MAX_BAG)
        {
            return Err(SplitError::Data(format!(
                "sparse bag {} (row {}, field {}) is decreasing or has more than {MAX_BAG} ids",
                i,
                i / fields.max(1),
                i % fields.max(1)
            )));
        }
        if let Some(i) = dense.iter().position(|v| !v.is_finite()) {
            return Err(SplitError::Data(format!(
                "dense feature {} of row {} is not finite",
                i % dense_width.max(1),
                i / dense_width.max(1)
            )));
        }
        Ok(Features {
            rows,
            dense_width,
            fields,
            dense,
            offsets,
            ids,
        })
    }

    /// Dense features only.
    pub fn dense(rows: usize, width: usize, values: Vec<f32>) -> Result<Self> {
        Self::new(rows, width, values, 0, Vec::new())
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Dense features per row.
    pub fn dense_width(&self) -> usize {
        self.dense_width
    }

    /// Sparse fields per row.
    pub fn fields(&self) -> usize {
        self.fields
    }

    /// The ids of row `r`, field `f` (empty if out of range).
    pub fn bag(&self, r: usize, f: usize) -> &[u64] {
        let k = r * self.fields + f;
        match (self.offsets.get(k), self.offsets.get(k + 1)) {
            (Some(&a), Some(&b)) if r < self.rows && f < self.fields => &self.ids[a..b],
            _ => &[],
        }
    }

    /// The rows `idx` as a new set (e.g. a train/test split).
    pub fn select(&self, idx: &[usize]) -> Result<Features> {
        let mut dense = Vec::with_capacity(idx.len() * self.dense_width);
        let mut offsets = Vec::with_capacity(idx.len() * self.fields + 1);
        let mut ids = Vec::new();
        offsets.push(0);
        for &i in idx {
            if i >= self.rows {
                return Err(SplitError::Data(format!(
                    "row {i} is out of range ({} rows)",
                    self.rows
                )));
            }
            dense.extend_from_slice(&self.dense[i * self.dense_width..(i + 1) * self.dense_width]);
            for f in 0..self.fields {
                ids.extend_from_slice(self.bag(i, f));
                offsets.push(ids.len());
            }
        }
        Features::with_bags(
            idx.len(),
            self.dense_width,
            dense,
            self.fields,
            offsets,
            ids,
        )
    }
}

/// How a multi-valued field's embedding rows are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean of the bag's rows (= the row itself for one id).
    #[default]
    Mean,
    /// The sum of the bag's rows.
    Sum,
}

/// A bottom tower.
///
/// ```toml
/// dense = 13
/// fields = [0, 0, 0]          # table index of each sparse field (tables may be shared)
/// pooling = "mean"            # or "sum", for multi-valued fields
/// hidden = [128]
/// output = 64                 # width of the cut layer
/// cut_activation = "relu"     # optional
/// optimizer = { kind = "adam", lr = 0.001 }
/// [[tables]]
/// rows = 1000000
/// dim = 16
/// optimizer = { kind = "rowwise_adagrad", lr = 0.05 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottomSpec {
    /// Dense features per row.
    pub dense: usize,
    /// Embedding tables.
    #[serde(default)]
    pub tables: Vec<TableSpec>,
    /// For each sparse field, the index of its table.
    #[serde(default)]
    pub fields: Vec<usize>,
    /// Hidden layer widths of the MLP (may be empty).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Width `k` of the output (the cut layer).
    pub output: usize,
    /// Hidden-layer activation.
    #[serde(default)]
    pub activation: Activation,
    /// Activation of the cut layer (none = linear).
    #[serde(default)]
    pub cut_activation: Option<Activation>,
    /// Optimiser of the MLP.
    pub optimizer: OptimizerConfig,
    /// Pooling of multi-valued fields (no effect on single ids).
    #[serde(default)]
    pub pooling: Pooling,
}

impl BottomSpec {
    /// A dense-only bottom tower `dense → hidden → output` with ReLU
    /// everywhere (the cut included) and Adam.
    pub fn dense(dense: usize, hidden: Vec<usize>, output: usize, lr: f64) -> Self {
        BottomSpec {
            dense,
            tables: Vec::new(),
            fields: Vec::new(),
            hidden,
            output,
            activation: Activation::Relu,
            cut_activation: Some(Activation::Relu),
            optimizer: OptimizerConfig::adam(lr),
            pooling: Pooling::Mean,
        }
    }

    /// Width of the MLP input: the fields' embedding widths plus the dense
    /// features.
    pub fn input_width(&self) -> usize {
        self.fields
            .iter()
            .map(|&t| self.tables.get(t).map_or(0, |t| t.dim))
            .sum::<usize>()
            + self.dense
    }

    fn mlp_spec(&self) -> MlpSpec {
        MlpSpec {
            inputs: self.input_width(),
            hidden: self.hidden.clone(),
            outputs: self.output,
            activation: self.activation,
            output_activation: self.cut_activation,
            loss: LossKind::Mse,
            init: fedra_nn::Init::Auto,
        }
    }

    /// Checks the tables, the field → table map and the MLP.
    pub fn validate(&self) -> Result<()> {
        for t in &self.tables {
            t.validate()?;
        }
        if let Some((f, &t)) = self
            .fields
            .iter()
            .enumerate()
            .find(|(_, t)| **t >= self.tables.len())
        {
            return Err(SplitError::config(
                "fields",
                format!(
                    "field {f} uses table {t}, but there are {} tables",
                    self.tables.len()
                ),
            ));
        }
        self.mlp_spec().validate()?;
        Ok(())
    }
}

/// The result of gathering a batch: the MLP input and, per table, the
/// unique rows touched and where each occurrence came from.
#[derive(Debug, Clone)]
pub struct Gathered {
    /// MLP input, row-major `rows × input_width`.
    pub x: Vec<f32>,
    rows: usize,
    /// Per table: unique rows and, for every `(row, field)` occurrence of
    /// that table (row-major over the batch), the index into `unique` and
    /// the column where it sits in `x`.
    lookups: Vec<Lookup>,
}

#[derive(Debug, Clone, Default)]
struct Lookup {
    unique: Vec<usize>,
    /// `(batch row, column offset in x, index into unique, pooling weight)`.
    slots: Vec<(u32, u32, u32, f32)>,
}

impl Gathered {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Unique embedding rows touched per table.
    pub fn unique_rows(&self) -> Vec<&[usize]> {
        self.lookups.iter().map(|l| l.unique.as_slice()).collect()
    }
}

/// A forward pass of a bottom tower kept for its backward pass.
#[derive(Debug)]
pub struct BottomPass {
    gathered: Gathered,
    tape: Tape,
}

impl BottomPass {
    /// The cut-layer output, row-major `rows × k`.
    pub fn output(&self) -> &[f32] {
        self.tape.output()
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.gathered.rows
    }
}

/// A bottom tower's full state (checkpoints; serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BottomState {
    /// The spec.
    pub spec: BottomSpec,
    /// MLP parameters, flat.
    pub mlp: Vec<f32>,
    /// The MLP optimiser's state.
    pub optimizer: OptimizerState,
    /// Each table's state.
    pub tables: Vec<TableState>,
}

/// A top tower's full state (checkpoints; serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopState {
    /// The spec.
    pub spec: TopSpec,
    /// Width of the concatenated input.
    pub inputs: usize,
    /// MLP parameters, flat.
    pub mlp: Vec<f32>,
    /// The optimiser's state.
    pub optimizer: OptimizerState,
}

/// A party's bottom tower: embedding tables, MLP and its optimiser.
#[derive(Debug, Clone)]
pub struct BottomTower {
    spec: BottomSpec,
    tables: Vec<SparseEmbedding>,
    mlp: Mlp,
    opt: Optimizer,
}

impl BottomTower {
    /// A fresh tower; tables first (in order), then the MLP, are
    /// initialised from `rng`.
    pub fn new(spec: BottomSpec, rng: &mut dyn RngCore) -> Result<Self> {
        spec.validate()?;
        let tables = spec
            .tables
            .iter()
            .map(|t| SparseEmbedding::new(t.clone(), rng))
            .collect::<Result<Vec<_>>>()?;
        let mlp = Mlp::new(spec.mlp_spec(), rng)?;
        let opt = Optimizer::new(spec.optimizer)?;
        Ok(BottomTower {
            spec,
            tables,
            mlp,
            opt,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &BottomSpec {
        &self.spec
    }

    /// The full state, for a checkpoint.
    pub fn to_state(&self) -> BottomState {
        BottomState {
            spec: self.spec.clone(),
            mlp: self.mlp.params_flat(),
            optimizer: self.opt.state().clone(),
            tables: self.tables.iter().map(SparseEmbedding::to_state).collect(),
        }
    }

    /// A tower from a checkpointed state (every size and value checked).
    pub fn from_state(s: BottomState) -> Result<Self> {
        s.spec.validate()?;
        if s.tables.len() != s.spec.tables.len() {
            return Err(SplitError::Data(format!(
                "{} table states for {} tables",
                s.tables.len(),
                s.spec.tables.len()
            )));
        }
        let tables = s
            .spec
            .tables
            .iter()
            .zip(s.tables)
            .map(|(spec, t)| SparseEmbedding::from_state(spec.clone(), t))
            .collect::<Result<Vec<_>>>()?;
        let mlp = Mlp::from_params(s.spec.mlp_spec(), &s.mlp)?;
        let mut opt = Optimizer::new(s.spec.optimizer)?;
        opt.restore(s.optimizer)?;
        Ok(BottomTower {
            spec: s.spec,
            tables,
            mlp,
            opt,
        })
    }

    /// Width of the cut layer.
    pub fn output_width(&self) -> usize {
        self.spec.output
    }

    /// The MLP.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The embedding tables.
    pub fn tables(&self) -> &[SparseEmbedding] {
        &self.tables
    }

    /// Bytes of all embedding tables (weights and optimiser state).
    pub fn embedding_bytes(&self) -> usize {
        self.tables.iter().map(SparseEmbedding::memory_bytes).sum()
    }

    fn check(&self, f: &Features) -> Result<()> {
        if f.dense_width != self.spec.dense || f.fields != self.spec.fields.len() {
            return Err(SplitError::Data(format!(
                "features have {} dense and {} sparse columns; the bottom tower expects {} and {}",
                f.dense_width,
                f.fields,
                self.spec.dense,
                self.spec.fields.len()
            )));
        }
        Ok(())
    }

    /// Gathers the MLP input of rows `batch` of `f` (de-duplicating the
    /// embedding rows per table).
    pub fn gather(&self, f: &Features, batch: &[usize]) -> Result<Gathered> {
        self.check(f)?;
        let width = self.spec.input_width();
        let mut x = vec![0f32; batch.len() * width];
        #[allow(clippy::type_complexity)]
        let mut per_table: Vec<(Vec<usize>, Vec<(u32, u32, f32)>)> =
            vec![(Vec::new(), Vec::new()); self.tables.len()];
        for (b, &i) in batch.iter().enumerate() {
            if i >= f.rows {
                return Err(SplitError::Data(format!(
                    "batch row {i} is out of range ({} rows)",
                    f.rows
                )));
            }
            let mut col = 0usize;
            for (field, &t) in self.spec.fields.iter().enumerate() {
                let table = &self.tables[t];
                let d = table.dim();
                let bag = f.bag(i, field);
                let weight = match self.spec.pooling {
                    Pooling::Mean if !bag.is_empty() => 1.0 / bag.len() as f32,
                    _ => 1.0,
                };
                let out = &mut x[b * width + col..b * width + col + d];
                for &id in bag {
                    let key = mix64(id ^ (field as u64).wrapping_mul(0xA24B_AED4_963E_E407));
                    let r = table.row_of(key);
                    if let Some(row) = table.row(r) {
                        if bag.len() == 1 {
                            out.copy_from_slice(row);
                        } else {
                            for (o, v) in out.iter_mut().zip(row) {
                                *o += weight * v;
                            }
                        }
                    }
                    per_table[t].0.push(r);
                    per_table[t].1.push((b as u32, col as u32, weight));
                }
                col += d;
            }
            x[b * width + col..(b + 1) * width]
                .copy_from_slice(&f.dense[i * f.dense_width..(i + 1) * f.dense_width]);
        }
        let lookups = per_table
            .into_iter()
            .map(|(rows, pos)| {
                let (unique, inverse) = dedupe(&rows);
                let slots = pos
                    .into_iter()
                    .zip(inverse)
                    .map(|((b, c, w), u)| (b, c, u, w))
                    .collect();
                Lookup { unique, slots }
            })
            .collect();
        Ok(Gathered {
            x,
            rows: batch.len(),
            lookups,
        })
    }

    /// The forward pass of rows `batch`, kept for [`BottomTower::backward`].
    pub fn forward(&self, f: &Features, batch: &[usize]) -> Result<BottomPass> {
        let gathered = self.gather(f, batch)?;
        let tape = self.mlp.forward_tape(&gathered.x, gathered.rows)?;
        Ok(BottomPass { gathered, tape })
    }

    /// The cut-layer output of rows `batch` (no graph kept).
    pub fn infer(&self, f: &Features, batch: &[usize]) -> Result<Vec<f32>> {
        let g = self.gather(f, batch)?;
        Ok(self.mlp.forward(&g.x, g.rows)?)
    }

    /// Back-propagates the cut-layer gradient `grad` (`rows × k`) received
    /// for `pass` and updates the MLP and the touched embedding rows.
    pub fn backward(&mut self, pass: BottomPass, grad: &[f32]) -> Result<()> {
        let g = pass.tape.backward(grad)?;
        self.apply(&pass.gathered, &g)
    }

    /// Applies parameter and input gradients of a gathered batch: the MLP
    /// takes an optimiser step, and each table's unique rows get the sum of
    /// their occurrences' input gradients (row-wise optimiser).
    pub fn apply(&mut self, gathered: &Gathered, g: &Gradients) -> Result<()> {
        let width = self.spec.input_width();
        if g.input.len() != gathered.rows * width {
            return Err(SplitError::Data(format!(
                "input gradient has {} values for {} rows × {width}",
                g.input.len(),
                gathered.rows
            )));
        }
        let mut table_grads = Vec::with_capacity(self.tables.len());
        for (t, l) in self.tables.iter().zip(&gathered.lookups) {
            let d = t.dim();
            let mut acc = vec![0f32; l.unique.len() * d];
            for &(b, c, u, w) in &l.slots {
                let src = b as usize * width + c as usize;
                let dst = u as usize * d;
                for (a, v) in acc[dst..dst + d].iter_mut().zip(&g.input[src..src + d]) {
                    *a += w * v;
                }
            }
            table_grads.push(acc);
        }
        // Validate everything before mutating anything.
        if let Some(i) = table_grads.iter().flatten().position(|v| !v.is_finite()) {
            return Err(SplitError::Data(format!(
                "embedding gradient value {i} is not finite"
            )));
        }
        self.mlp.apply_gradient(&mut self.opt, &g.params)?;
        for ((t, l), acc) in self
            .tables
            .iter_mut()
            .zip(&gathered.lookups)
            .zip(&table_grads)
        {
            t.apply_gradient(&l.unique, acc)?;
        }
        Ok(())
    }
}

/// The label holder's top model.
///
/// ```toml
/// hidden = [128]
/// outputs = 1
/// loss = "binary_cross_entropy"   # or "mse", "softmax_cross_entropy"
/// optimizer = { kind = "adam", lr = 0.001 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopSpec {
    /// Hidden layer widths.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Outputs (1 for binary cross-entropy, classes for softmax).
    pub outputs: usize,
    /// Hidden-layer activation.
    #[serde(default)]
    pub activation: Activation,
    /// The loss.
    #[serde(default)]
    pub loss: LossKind,
    /// Optimiser.
    pub optimizer: OptimizerConfig,
}

impl TopSpec {
    /// A binary classifier (sigmoid BCE) with ReLU hidden layers and Adam.
    pub fn binary(hidden: Vec<usize>, lr: f64) -> Self {
        TopSpec {
            hidden,
            outputs: 1,
            activation: Activation::Relu,
            loss: LossKind::BinaryCrossEntropy,
            optimizer: OptimizerConfig::adam(lr),
        }
    }
}

/// The top tower: `inputs` = the sum of the cut widths, in party order.
#[derive(Debug, Clone)]
pub struct TopTower {
    spec: TopSpec,
    mlp: Mlp,
    opt: Optimizer,
}

impl TopTower {
    /// A fresh top tower over `inputs` concatenated cut values.
    pub fn new(spec: TopSpec, inputs: usize, rng: &mut dyn RngCore) -> Result<Self> {
        let mlp = Mlp::new(Self::mlp_spec(&spec, inputs), rng)?;
        let opt = Optimizer::new(spec.optimizer)?;
        Ok(TopTower { spec, mlp, opt })
    }

    /// The full state, for a checkpoint.
    pub fn to_state(&self) -> TopState {
        TopState {
            spec: self.spec.clone(),
            inputs: self.inputs(),
            mlp: self.mlp.params_flat(),
            optimizer: self.opt.state().clone(),
        }
    }

    /// A top tower from a checkpointed state (sizes and values checked).
    pub fn from_state(s: TopState) -> Result<Self> {
        let mlp = Mlp::from_params(Self::mlp_spec(&s.spec, s.inputs), &s.mlp)?;
        let mut opt = Optimizer::new(s.spec.optimizer)?;
        opt.restore(s.optimizer)?;
        Ok(TopTower {
            spec: s.spec,
            mlp,
            opt,
        })
    }

    fn mlp_spec(spec: &TopSpec, inputs: usize) -> MlpSpec {
        MlpSpec {
            inputs,
            hidden: spec.hidden.clone(),
            outputs: spec.outputs,
            activation: spec.activation,
            output_activation: None,
            loss: spec.loss,
            init: fedra_nn::Init::Auto,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &TopSpec {
        &self.spec
    }

    /// The MLP.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Width of the concatenated input.
    pub fn inputs(&self) -> usize {
        self.mlp.spec().inputs
    }

    /// Loss and gradients (parameters and input) of a batch; no update.
    pub fn gradient(&self, cut: &[f32], y: &[f32], rows: usize) -> Result<(f32, Gradients)> {
        Ok(self.mlp.gradient_with_input(cut, y, rows)?)
    }

    /// One optimiser step with a parameter gradient.
    pub fn apply(&mut self, grad: &[f32]) -> Result<()> {
        Ok(self.mlp.apply_gradient(&mut self.opt, grad)?)
    }

    /// Predictions (probabilities for the classification losses).
    pub fn predict(&self, cut: &[f32], rows: usize) -> Result<Vec<f32>> {
        Ok(self.mlp.predict(cut, rows)?)
    }

    /// Mean loss (no gradient).
    pub fn loss(&self, cut: &[f32], y: &[f32], rows: usize) -> Result<f32> {
        Ok(self.mlp.loss(cut, y, rows)?)
    }
}
