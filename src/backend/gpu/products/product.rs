//! The three matrix products of a layer with weights, as the kernels compute them: the
//! forward (`A·Bᵀ`, then a bias and an activation), the input gradient (`gate(A)·B`)
//! and the weight gradient (`gate(A)ᵀ·B`, with the column sums of `gate(A)` as the
//! bias gradient). A linear layer is these products directly; a convolution is them
//! over its unfolded input.

/// Which product a generated kernel computes (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    /// `y = act(x·wᵀ + b)`.
    Forward,
    /// `dx = (dy ⊙ act′)·w`.
    GradInput,
    /// `dw (+)= (dy ⊙ act′)ᵀ·x` and `db (+)= Σ_rows dy ⊙ act′`.
    GradWeight,
}

impl Product {
    /// Every product.
    pub const ALL: [Product; 3] = [Product::Forward, Product::GradInput, Product::GradWeight];

    /// The name in benchmarks and the tuning cache.
    pub fn name(self) -> &'static str {
        match self {
            Product::Forward => "forward",
            Product::GradInput => "grad_input",
            Product::GradWeight => "grad_weight",
        }
    }
}

impl Product {
    /// The output's rows and columns and the sum's length of this product for
    /// operands `a: n×k` and `b: m×k` of the forward (the linear layer's `x` and `w`).
    pub fn shape(self, n: usize, k: usize, m: usize) -> ProductShape {
        let [rows, cols, depth] = match self {
            Product::Forward => [n, m, k],
            Product::GradInput => [n, k, m],
            Product::GradWeight => [m, k, n],
        };
        ProductShape { rows, cols, depth }
    }

    /// The forward's operand sizes `[n, k, m]` of this product over `shape`: the
    /// inverse of [`Product::shape`].
    pub fn operands(self, shape: ProductShape) -> [usize; 3] {
        let ProductShape { rows, cols, depth } = shape;
        match self {
            Product::Forward => [rows, depth, cols],
            Product::GradInput => [rows, cols, depth],
            Product::GradWeight => [depth, cols, rows],
        }
    }
}

/// The size of one product: its output is `rows × cols`, each output a sum over
/// `depth` terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProductShape {
    /// Rows of the output.
    pub rows: usize,
    /// Columns of the output.
    pub cols: usize,
    /// Terms of each output's sum.
    pub depth: usize,
}

impl ProductShape {
    /// Multiply-adds of the product.
    pub fn work(self) -> usize {
        self.rows
            .saturating_mul(self.cols)
            .saturating_mul(self.depth)
    }
}
