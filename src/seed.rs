//! The seed workload in one place: the 2-25-25-25-2 network of the original report and
//! its hyperparameters (the README describes the workload).

use rand::Rng;

use crate::backend::{Backend, Reduction};
use crate::error::Result;
use crate::nn::{Linear, Module, ReLU, Sequential, Tanh};

/// Learning rate of the seed workload.
pub const LR: f32 = 0.01;
/// Mini-batch size of the seed workload.
pub const BATCH_SIZE: usize = 10;
/// Epochs `disc_gpu` trains for by default.
pub const EPOCHS: usize = 300;
/// The loss reduction of the seed workload (sum, as the report's MSE).
pub const REDUCTION: Reduction = Reduction::Sum;
/// The default seed of `disc_gpu`: the data come from a ChaCha8 stream seeded with
/// it, the initial weights from one seeded with `SEED + 1`. It is 0, the first seed,
/// fixed on 2026-12-02 before its result was seen; it had been 12, picked as a seed
/// where both backends ended well under the report's 29 test errors with a constant
/// learning rate. The test errors vary with the seed more than with the backend: the
/// README gives their distribution over 32 seeds (`disc_gpu --runs 32`).
pub const SEED: u64 = 0;
/// Layer widths of the seed network.
pub const WIDTHS: [usize; 5] = [2, 25, 25, 25, 2];

/// `Linear(2,25) ReLU Linear(25,25) ReLU Linear(25,25) ReLU Linear(25,2) Tanh`, with
/// PyTorch's default initialisation drawn from `rng`, layer by layer.
pub fn network<B: Backend>(backend: &B, rng: &mut impl Rng) -> Result<Sequential<B>> {
    let mut layers = hidden_and_output(backend, rng)?;
    layers.push(Box::new(Tanh::new()));
    Sequential::new(layers)
}

/// The seed network without its final Tanh, whose outputs are logits for a
/// cross-entropy loss. Its parameters have the same names, shapes and initial values
/// as [`network`]'s for the same `rng`.
pub fn logit_network<B: Backend>(backend: &B, rng: &mut impl Rng) -> Result<Sequential<B>> {
    Sequential::new(hidden_and_output(backend, rng)?)
}

/// The linear layers with a ReLU between each two.
fn hidden_and_output<B: Backend>(
    backend: &B,
    rng: &mut impl Rng,
) -> Result<Vec<Box<dyn Module<B>>>> {
    let mut layers: Vec<Box<dyn Module<B>>> = Vec::new();
    for (i, pair) in WIDTHS.windows(2).enumerate() {
        layers.push(Box::new(Linear::new(backend, pair[0], pair[1], rng)?));
        if i + 2 < WIDTHS.len() {
            layers.push(Box::new(ReLU::new()));
        }
    }
    Ok(layers)
}
