//! The matrix products of layers with weights, in one place: the three products
//! ([`Product`]), the kernels that compute them (the plain ones and two generated
//! families, [`subgroup`] and [`staged`]), which of them a device runs ([`Choice`]),
//! their compiled pipelines, and the tuner that chooses among them by timing them with
//! a function its caller hands over.

pub mod choice;
pub mod pipelines;
pub mod product;
pub mod source;
pub mod staged;
pub mod subgroup;
pub mod tuner;
pub mod tuning_cache;

pub use choice::{
    candidates, fixed_choice, staged_candidates, subgroup_candidates, Choice, STAGED_FROM,
};
pub use product::{Product, ProductShape};
pub use staged::StagedConfig;
pub use subgroup::GemmConfig;
pub use tuner::{ShapeClass, TUNE_ENV};
pub use tuning_cache::{cache_path, TUNE_CACHE_ENV};
