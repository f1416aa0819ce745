//! The seed workload: points of the unit square labelled by whether they lie inside a
//! disc of area 1/2.

use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt, SeedableRng};

use super::Dataset;
use crate::error::Result;
use crate::tensor::Tensor;

/// Radius of the disc of area 1/2: 1/√(2π).
pub const DISC_RADIUS: f64 = 0.398_942_280_401_432_7;

/// Points per set in the seed workload.
pub const DISC_POINTS: usize = 1000;

/// `n` points uniform in the unit square `[0,1]²`, labelled 1 inside the disc of centre (0.5, 0.5) and
/// radius [`DISC_RADIUS`], else 0.
pub fn disc(n: usize, rng: &mut impl Rng) -> Result<Dataset> {
    let mut inputs = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let (x, y): (f32, f32) = (rng.random(), rng.random());
        let (dx, dy) = (x as f64 - 0.5, y as f64 - 0.5);
        labels.push(usize::from(dx * dx + dy * dy < DISC_RADIUS * DISC_RADIUS));
        inputs.extend([x, y]);
    }
    Dataset::new(Tensor::new(&[n, 2], inputs)?, labels, 2)
}

/// The seed workload's train and test sets, [`DISC_POINTS`] each, drawn in that order
/// from a ChaCha8 stream seeded with `seed` (portable: the same points everywhere).
pub fn disc_train_test(seed: u64) -> Result<(Dataset, Dataset)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok((disc(DISC_POINTS, &mut rng)?, disc(DISC_POINTS, &mut rng)?))
}
