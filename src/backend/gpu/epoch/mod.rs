//! The whole-epoch MLP trainer on the GPU: one generated kernel trains every
//! mini-batch of an epoch of a narrow MLP in one dispatch.

pub mod generator;

pub use generator::{workgroup_bytes, FUSED_PAYS_FROM_STEPS, MAX_WIDTH};
