//! The model description: [`MlpSpec`] (layer widths, activation, loss,
//! initialisation), serde-friendly for TOML/JSON configs.

use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result};

/// Largest width of any layer (guards against absurd configs).
pub const MAX_WIDTH: usize = 1 << 16;
/// Most hidden layers.
pub const MAX_HIDDEN_LAYERS: usize = 64;
/// Most parameters of a model (2^28 f32 = 1 GiB).
pub const MAX_PARAMS: usize = 1 << 28;

/// The hidden layers' non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
}

/// The training loss (it also fixes what [`crate::Mlp::predict`] returns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Sigmoid + binary cross-entropy on one output; targets 0/1;
    /// `predict` gives `P(y = 1)`.
    #[default]
    BinaryCrossEntropy,
    /// Softmax + cross-entropy over `outputs` classes; targets are class
    /// indices `0..outputs` (as `f32`); `predict` gives the class
    /// probabilities, row-major.
    SoftmaxCrossEntropy,
    /// Mean squared error: the mean of `(ŷ−y)²` over all `rows × outputs`
    /// values (targets row-major); `predict` gives `ŷ`.
    Mse,
}

/// Weight initialisation (biases always start at zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// He (Kaiming) uniform for hidden layers with ReLU, Xavier (Glorot)
    /// uniform for hidden layers with tanh and for the output layer.
    #[default]
    Auto,
    /// Xavier uniform everywhere: `U(±√(6/(fan_in+fan_out)))`.
    Xavier,
    /// He uniform everywhere: `U(±√(6/fan_in))`.
    He,
}

/// A multi-layer perceptron: `inputs → hidden[0] → … → outputs`, fully
/// connected, `activation` after every hidden layer, none after the last.
/// No hidden layers = a linear / logistic model.
///
/// ```toml
/// inputs = 30
/// hidden = [128, 128, 128]
/// outputs = 1
/// activation = "relu"                # or "tanh"
/// loss = "binary_cross_entropy"      # or "softmax_cross_entropy", "mse"
/// init = "auto"                      # or "xavier", "he"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    /// Number of input features, `>= 1`.
    pub inputs: usize,
    /// Widths of the hidden layers (each `>= 1`); empty = linear model.
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Number of outputs, `>= 1` (1 for binary cross-entropy, `>= 2` for
    /// softmax).
    pub outputs: usize,
    /// Hidden-layer activation.
    #[serde(default)]
    pub activation: Activation,
    /// Activation after the output layer (default none). Used for the
    /// bottom towers of split learning, whose output (the cut layer) feeds
    /// another party's model; the loss is applied to the activated output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_activation: Option<Activation>,
    /// Training loss.
    #[serde(default)]
    pub loss: LossKind,
    /// Weight initialisation.
    #[serde(default)]
    pub init: Init,
}

impl MlpSpec {
    /// A binary classifier (`outputs = 1`, sigmoid BCE) with ReLU hidden layers.
    pub fn binary(inputs: usize, hidden: Vec<usize>) -> Self {
        MlpSpec {
            inputs,
            hidden,
            outputs: 1,
            activation: Activation::Relu,
            output_activation: None,
            loss: LossKind::BinaryCrossEntropy,
            init: Init::Auto,
        }
    }

    /// Logistic regression: a binary classifier without hidden layers.
    pub fn logistic_regression(inputs: usize) -> Self {
        Self::binary(inputs, Vec::new())
    }

    /// Checks every width and the loss/outputs combination.
    pub fn validate(&self) -> Result<()> {
        let width = |field: &'static str, w: usize| {
            if w == 0 || w > MAX_WIDTH {
                Err(NnError::config(
                    field,
                    format!("must be in 1..={MAX_WIDTH} (got {w})"),
                ))
            } else {
                Ok(())
            }
        };
        width("inputs", self.inputs)?;
        width("outputs", self.outputs)?;
        if self.hidden.len() > MAX_HIDDEN_LAYERS {
            return Err(NnError::config(
                "hidden",
                format!(
                    "at most {MAX_HIDDEN_LAYERS} hidden layers (got {})",
                    self.hidden.len()
                ),
            ));
        }
        for &h in &self.hidden {
            width("hidden", h)?;
        }
        match self.loss {
            LossKind::BinaryCrossEntropy if self.outputs != 1 => {
                return Err(NnError::config(
                    "outputs",
                    format!(
                        "binary_cross_entropy needs exactly 1 output (got {})",
                        self.outputs
                    ),
                ));
            }
            LossKind::SoftmaxCrossEntropy if self.outputs < 2 => {
                return Err(NnError::config(
                    "outputs",
                    format!(
                        "softmax_cross_entropy needs >= 2 outputs (got {})",
                        self.outputs
                    ),
                ));
            }
            _ => {}
        }
        let n = self.count_params();
        if n > MAX_PARAMS {
            return Err(NnError::config(
                "hidden",
                format!("the model would have {n} parameters, more than {MAX_PARAMS}"),
            ));
        }
        Ok(())
    }

    /// Layer widths including input and output.
    pub fn widths(&self) -> Vec<usize> {
        let mut w = Vec::with_capacity(self.hidden.len() + 2);
        w.push(self.inputs);
        w.extend_from_slice(&self.hidden);
        w.push(self.outputs);
        w
    }

    /// Total number of parameters (saturating, for validation).
    pub fn count_params(&self) -> usize {
        self.widths().windows(2).fold(0usize, |acc, w| {
            acc.saturating_add(w[0].saturating_mul(w[1]).saturating_add(w[1]))
        })
    }
}
