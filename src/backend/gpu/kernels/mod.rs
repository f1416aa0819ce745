//! The code the device runs and how it is called: the calling convention (bindings
//! and typed parameter blocks), each built-in family's parameter struct, and the
//! table of built-in shaders and kernels.

pub mod convention;
pub mod params;
pub mod table;
