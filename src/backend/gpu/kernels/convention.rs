//! The calling convention of every kernel, written once: the binding numbers, and the
//! parameter block as a typed Rust struct whose WGSL declaration is generated from
//! the same field list (`kernel_params!`), so that the host and the shaders cannot
//! disagree on a slot.
//!
//! Bindings: [`PARAMS`] is the uniform parameter block; [`INPUTS`] the read-only
//! inputs, in the order the op lists them; [`OUTPUT`] the output and
//! [`SECOND_OUTPUT`] a second one, for kernels that write two. Every tensor is a view:
//! an element offset into its buffer, which the parameter block carries in the first
//! five fields of every family's struct (`in0_at`, `in1_at`, `in2_at`, `out_at`,
//! `out2_at`: the offsets of the views at bindings 1 to 5), filled by the launcher;
//! the family's own fields follow, named for what they hold.

/// The uniform parameter block's binding.
pub const PARAMS: u32 = 0;
/// The bindings of the read-only inputs, in the order an op lists them.
pub const INPUTS: [u32; MAX_INPUTS] = [1, 2, 3];
/// The most inputs a kernel binds.
pub const MAX_INPUTS: usize = 3;
/// The output's binding.
pub const OUTPUT: u32 = 4;
/// The second output's binding, for kernels that write two.
pub const SECOND_OUTPUT: u32 = 5;

/// The element offsets of a launch's views, in binding order: the inputs, the output,
/// the second output (0 where a binding is unused).
pub type ViewOffsets = [u32; 5];

/// A kernel family's parameter block: a `#[repr(C)]` struct of `u32` and `f32`
/// scalars, declared with `kernel_params!`, which also gives its WGSL declaration.
pub trait KernelParams: bytemuck::Pod {
    /// The struct's name, in Rust and in WGSL.
    const NAME: &'static str;
    /// Its fields in declaration order: name and WGSL type.
    const FIELDS: &'static [(&'static str, &'static str)];

    /// Sets the five view offsets that lead every block.
    fn set_views(&mut self, at: ViewOffsets);

    /// The WGSL declaration of the struct.
    fn wgsl() -> String {
        let mut s = format!("struct {} {{\n", Self::NAME);
        for (name, ty) in Self::FIELDS {
            s.push_str(&format!("    {name}: {ty},\n"));
        }
        s.push_str("}\n");
        s
    }

    /// The struct's WGSL declaration and the uniform binding `params` of its type.
    fn wgsl_binding() -> String {
        format!(
            "{}@group(0) @binding({PARAMS}) var<uniform> params: {};\n",
            Self::wgsl(),
            Self::NAME
        )
    }
}

/// The WGSL declarations of the built-in kernels' storage bindings: `in0`, `in1`,
/// `in2` (read-only), `out` and `out2`.
pub fn storage_bindings() -> String {
    let mut s = String::new();
    for (i, binding) in INPUTS.iter().enumerate() {
        s.push_str(&format!(
            "@group(0) @binding({binding}) var<storage, read> in{i}: array<f32>;\n"
        ));
    }
    s.push_str(&format!(
        "@group(0) @binding({OUTPUT}) var<storage, read_write> out: array<f32>;\n\
         @group(0) @binding({SECOND_OUTPUT}) var<storage, read_write> out2: array<f32>;\n"
    ));
    s
}

/// Declares a kernel family's parameter struct: the five view offsets of the
/// convention, then the given fields (`u32` or `f32` each), with its
/// [`KernelParams`] implementation and so its WGSL declaration.
macro_rules! kernel_params {
    ($(#[$meta:meta])* $name:ident { $($(#[$field_meta:meta])* $field:ident: $ty:ident,)* }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            /// Element offset of the view at the first input binding.
            pub in0_at: u32,
            /// Element offset of the view at the second input binding.
            pub in1_at: u32,
            /// Element offset of the view at the third input binding.
            pub in2_at: u32,
            /// Element offset of the output view.
            pub out_at: u32,
            /// Element offset of the second output view.
            pub out2_at: u32,
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        impl $crate::backend::gpu::kernels::convention::KernelParams for $name {
            const NAME: &'static str = stringify!($name);
            const FIELDS: &'static [(&'static str, &'static str)] = &[
                ("in0_at", "u32"),
                ("in1_at", "u32"),
                ("in2_at", "u32"),
                ("out_at", "u32"),
                ("out2_at", "u32"),
                $((stringify!($field), stringify!($ty)),)*
            ];

            fn set_views(&mut self, at: $crate::backend::gpu::kernels::convention::ViewOffsets) {
                [self.in0_at, self.in1_at, self.in2_at, self.out_at, self.out2_at] = at;
            }
        }
    };
}
pub(crate) use kernel_params;
