//! The reference: what every op means ([`definitions`]: plain loops, generic over
//! `f32` and `f64`), and the oracle backend that runs them ([`Reference`]: the
//! definitions in `f32` on one thread), which the tests hold the fast backends to.

pub mod definitions;
pub mod images;
mod oracle;

pub use oracle::Reference;
