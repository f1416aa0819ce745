//! The kernels that can compute a product, by name: the plain ones of
//! `shaders/linear.wgsl` and the members of the two generated families, and which of
//! them an adapter and a shape admit.

use super::product::Product;
use super::staged::StagedConfig;
use super::subgroup::{self, GemmConfig};

/// The smallest dimension from which a workgroup-memory kernel is used where measuring
/// is off and no subgroup kernel applies.
pub const STAGED_FROM: usize = 64;

/// A kernel that computes one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    /// One invocation per output (`shaders/linear.wgsl`).
    Naive,
    /// The forward's 64×64 workgroup-memory tiles (`linear_forward_tiled`).
    Tiled,
    /// A generated subgroup kernel ([`subgroup`]).
    Subgroup(GemmConfig),
    /// A generated workgroup-memory kernel ([`staged`](super::staged)).
    Staged(StagedConfig),
}

impl Choice {
    /// The name in the cache file and the benchmark: `naive`, `tiled`, or the
    /// generated configuration's label.
    pub fn label(self) -> String {
        match self {
            Choice::Naive => "naive".into(),
            Choice::Tiled => "tiled".into(),
            Choice::Subgroup(c) => c.label(),
            Choice::Staged(c) => c.label(),
        }
    }

    /// The choice a label names.
    pub(crate) fn parse(label: &str) -> Option<Choice> {
        match label {
            "naive" => Some(Choice::Naive),
            "tiled" => Some(Choice::Tiled),
            _ if label.starts_with('s') => StagedConfig::parse(label).map(Choice::Staged),
            _ => {
                let (rc, lanes) = label.split_once('/')?;
                let (rows, cols) = rc.split_once('x')?;
                Some(Choice::Subgroup(GemmConfig {
                    rows: rows.parse().ok()?,
                    cols: cols.parse().ok()?,
                    lanes: lanes.parse().ok()?,
                }))
            }
        }
    }
}

/// The generated configurations tried on an adapter with subgroups of `lanes`.
pub fn subgroup_candidates(product: Product, lanes: u32) -> Vec<GemmConfig> {
    let rows: &[u32] = match product {
        Product::GradWeight => &[32, 64],
        _ => &[16, 32, 64],
    };
    rows.iter()
        .map(|&r| GemmConfig {
            rows: r.max(lanes * if product == Product::GradWeight { 4 } else { 1 }),
            cols: 8,
            lanes,
        })
        .filter(|c| c.is_valid(product))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The workgroup-memory configurations tried on every adapter: 64 × 64 outputs per
/// workgroup of 16 × 16 invocations, 4 × 4 each, 8 steps of the sum staged at once,
/// with one stage and with two.
pub fn staged_candidates() -> Vec<StagedConfig> {
    [false, true]
        .into_iter()
        .map(|double| StagedConfig {
            tile: 64,
            depth: 8,
            per: 4,
            double,
        })
        .collect()
}

/// The kernels that can compute `product` for operands `n×k` and `m×k` on an adapter
/// with subgroups of `lanes` (`None`: no generated subgroup kernels): the naive one,
/// the tiled forward, the workgroup-memory family, and the subgroup family where the
/// contiguous dimensions are multiples of 4.
pub fn candidates(
    product: Product,
    lanes: Option<u32>,
    n: usize,
    k: usize,
    m: usize,
) -> Vec<Choice> {
    let mut all = vec![Choice::Naive];
    if product == Product::Forward {
        all.push(Choice::Tiled);
    }
    all.extend(staged_candidates().into_iter().map(Choice::Staged));
    if let Some(lanes) = lanes.filter(|_| subgroup::fits(product, n, k, m)) {
        all.extend(
            subgroup_candidates(product, lanes)
                .into_iter()
                .map(Choice::Subgroup),
        );
    }
    all
}

/// The rule used where measuring is off: the largest subgroup kernel where it
/// applies, else the double-buffered workgroup-memory kernel where every dimension is
/// at least [`STAGED_FROM`], else the naive one.
pub fn fixed_choice(product: Product, lanes: Option<u32>, n: usize, k: usize, m: usize) -> Choice {
    match candidates(product, lanes, n, k, m).last() {
        Some(&c @ Choice::Subgroup(_)) => c,
        _ if n.min(k).min(m) >= STAGED_FROM => staged_candidates()
            .into_iter()
            .rfind(|c| c.double)
            .map_or(Choice::Naive, Choice::Staged),
        _ => Choice::Naive,
    }
}
