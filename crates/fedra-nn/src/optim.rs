//! Optimisers over the flat parameter vector: SGD with momentum and Adam,
//! both with L2 weight decay, and their checkpointable state.
//!
//! They work on plain `&mut [f32]` (the order of [`crate::Mlp::params`]),
//! so FL corrections (FedProx, SCAFFOLD) and DP noise can be applied to
//! the flat gradient before [`Optimizer::step`]. The update rules are
//! PyTorch's (`torch.optim.SGD` with `dampening = 0, nesterov = False`,
//! `torch.optim.Adam` with `amsgrad = False`); weight decay is added to the
//! gradient (`g + λ·w`), as in both.

use serde::{Deserialize, Serialize};

use crate::error::{NnError, Result, check_finite};

/// Which optimiser, with its hyper-parameters.
///
/// ```toml
/// kind = "adam"          # lr = 0.001, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0
/// # kind = "sgd"         # lr = 0.01, momentum = 0.0, weight_decay = 0.0
/// lr = 0.001
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent with (heavy-ball) momentum.
    Sgd {
        /// Learning rate, finite and `> 0`.
        lr: f64,
        /// Momentum in `[0, 1)`.
        #[serde(default)]
        momentum: f64,
        /// L2 weight decay `>= 0`.
        #[serde(default)]
        weight_decay: f64,
    },
    /// Adam (Kingma & Ba 2015).
    Adam {
        /// Learning rate, finite and `> 0`.
        lr: f64,
        /// First-moment decay in `[0, 1)`.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Second-moment decay in `[0, 1)`.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Denominator offset, finite and `> 0`.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 weight decay `>= 0`.
        #[serde(default)]
        weight_decay: f64,
    },
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

impl OptimizerConfig {
    /// Plain SGD with learning rate `lr`.
    pub fn sgd(lr: f64) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }

    /// Adam with PyTorch's defaults and learning rate `lr`.
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => lr,
        }
    }

    /// Checks every hyper-parameter's range.
    pub fn validate(&self) -> Result<()> {
        let positive = |field: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(NnError::config(
                    field,
                    format!("must be finite and > 0 (got {v})"),
                ))
            }
        };
        let unit = |field: &'static str, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(NnError::config(
                    field,
                    format!("must be in [0, 1) (got {v})"),
                ))
            }
        };
        let decay = |v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(NnError::config(
                    "optimizer.weight_decay",
                    format!("must be finite and >= 0 (got {v})"),
                ))
            }
        };
        match *self {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                positive("optimizer.lr", lr)?;
                unit("optimizer.momentum", momentum)?;
                decay(weight_decay)
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                positive("optimizer.lr", lr)?;
                unit("optimizer.beta1", beta1)?;
                unit("optimizer.beta2", beta2)?;
                positive("optimizer.eps", eps)?;
                decay(weight_decay)
            }
        }
    }
}

/// An optimiser's state: the step count and its moment vectors (empty
/// until the first step). Serde round-trips it exactly (JSON with
/// `float_roundtrip`, or any binary format).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OptimizerState {
    /// Steps taken.
    pub step: u64,
    /// SGD: momentum buffer; Adam: first moment.
    pub m: Vec<f32>,
    /// Adam: second moment; SGD: empty.
    pub v: Vec<f32>,
}

/// An optimiser with its state; checkpoint it whole with serde.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Optimizer {
    config: OptimizerConfig,
    state: OptimizerState,
}

impl Optimizer {
    /// A fresh optimiser (validated configuration).
    pub fn new(config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Optimizer {
            config,
            state: OptimizerState::default(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The state, e.g. to checkpoint.
    pub fn state(&self) -> &OptimizerState {
        &self.state
    }

    /// Replaces the state with a checkpointed one (the moment vectors must
    /// be empty or of equal length, and finite).
    pub fn restore(&mut self, state: OptimizerState) -> Result<()> {
        if !state.v.is_empty() && state.v.len() != state.m.len() {
            return Err(NnError::Shape {
                what: "optimizer state v",
                expected: state.m.len(),
                got: state.v.len(),
            });
        }
        check_finite("optimizer state m", &state.m)?;
        check_finite("optimizer state v", &state.v)?;
        self.state = state;
        Ok(())
    }

    /// Forgets the moments and the step count (e.g. at the start of an FL
    /// round, when the global model replaced the local one).
    pub fn reset(&mut self) {
        self.state = OptimizerState::default();
    }

    /// One update of `params` with `grad` (same length, finite).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) -> Result<()> {
        if grad.len() != params.len() {
            return Err(NnError::Shape {
                what: "gradient",
                expected: params.len(),
                got: grad.len(),
            });
        }
        check_finite("gradient", grad)?;
        let n = params.len();
        let st = &mut self.state;
        if st.m.is_empty() {
            st.m = vec![0.0; n];
        } else if st.m.len() != n {
            return Err(NnError::Shape {
                what: "optimizer state m",
                expected: n,
                got: st.m.len(),
            });
        }
        st.step += 1;
        match self.config {
            OptimizerConfig::Sgd {
                lr,
                momentum,
                weight_decay,
            } => {
                let first = st.step == 1;
                for ((w, &g), buf) in params.iter_mut().zip(grad).zip(st.m.iter_mut()) {
                    let g = f64::from(g) + weight_decay * f64::from(*w);
                    let d = if momentum == 0.0 || first {
                        g
                    } else {
                        momentum * f64::from(*buf) + g
                    };
                    *buf = d as f32;
                    *w = (f64::from(*w) - lr * d) as f32;
                }
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                if st.v.is_empty() {
                    st.v = vec![0.0; n];
                } else if st.v.len() != n {
                    return Err(NnError::Shape {
                        what: "optimizer state v",
                        expected: n,
                        got: st.v.len(),
                    });
                }
                let t = st.step.min(i32::MAX as u64) as i32;
                let bc1 = 1.0 - beta1.powi(t);
                let bc2 = 1.0 - beta2.powi(t);
                for (((w, &g), m), v) in params
                    .iter_mut()
                    .zip(grad)
                    .zip(st.m.iter_mut())
                    .zip(st.v.iter_mut())
                {
                    let g = f64::from(g) + weight_decay * f64::from(*w);
                    let m1 = beta1 * f64::from(*m) + (1.0 - beta1) * g;
                    let v1 = beta2 * f64::from(*v) + (1.0 - beta2) * g * g;
                    *m = m1 as f32;
                    *v = v1 as f32;
                    let update = lr * (m1 / bc1) / ((v1 / bc2).sqrt() + eps);
                    *w = (f64::from(*w) - update) as f32;
                }
            }
        }
        Ok(())
    }
}
