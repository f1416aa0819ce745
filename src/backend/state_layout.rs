//! [`StateLayout`]: where an update rule's state lies, defined once for every reader:
//! the optimizers that allocate it, the checks and kernels of the update ops, and the
//! fused trainers' packed tensor.

use std::ops::Range;

/// The layout of an update rule's state for a parameter of `n` values: [`rows`] rows
/// of `n` values laid out as the parameter, then [`shared`] values that every
/// parameter holds a copy of (they advance once per step, the same for all). Adam's
/// is `[m | v | 1 − β₁ᵗ | 1 − β₂ᵗ]`: the two running moments, then the two bias
/// corrections. The fused trainers' packed tensor holds the `P` parameters of a
/// network, then the state laid out as for one parameter of `P` values.
///
/// [`rows`]: StateLayout::rows
/// [`shared`]: StateLayout::shared
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateLayout {
    rows: usize,
    shared: usize,
}

impl StateLayout {
    /// Plain SGD: no state.
    pub const SGD: StateLayout = StateLayout { rows: 0, shared: 0 };
    /// SGD with momentum: the velocity.
    pub const MOMENTUM: StateLayout = StateLayout { rows: 1, shared: 0 };
    /// Adam: `[m | v | c₁ | c₂]`, the first and second moments and the bias
    /// corrections `c₁ = 1 − β₁ᵗ`, `c₂ = 1 − β₂ᵗ`.
    pub const ADAM: StateLayout = StateLayout { rows: 2, shared: 2 };

    /// Rows of `n` values, one per value of the parameter.
    pub fn rows(self) -> usize {
        self.rows
    }

    /// Values after the rows that all parameters share.
    pub fn shared(self) -> usize {
        self.shared
    }

    /// How many values the state of a parameter of `n` values holds.
    pub fn len(self, n: usize) -> usize {
        self.rows * n + self.shared
    }

    /// Whether the rule keeps no state at all.
    pub fn is_empty(self) -> bool {
        self.len(1) == 0
    }

    /// Where row `r` of the state of a parameter of `n` values lies.
    pub fn row(self, r: usize, n: usize) -> Range<usize> {
        r * n..(r + 1) * n
    }

    /// Where the shared values of the state of a parameter of `n` values lie.
    pub fn shared_values(self, n: usize) -> Range<usize> {
        self.rows * n..self.len(n)
    }

    /// The state of a parameter of `n` values split into its `R` rows (`R` must be
    /// [`StateLayout::rows`]) and its shared values: for Adam `([m, v], c)`.
    pub fn split<T, const R: usize>(self, state: &[T], n: usize) -> ([&[T]; R], &[T]) {
        assert_eq!(R, self.rows, "a state of {} rows split into {R}", self.rows);
        let mut rest = state;
        let rows = std::array::from_fn(|_| {
            let (row, tail) = rest.split_at(n);
            rest = tail;
            row
        });
        (rows, &rest[..self.shared])
    }

    /// [`StateLayout::split`] of a state to update.
    pub fn split_mut<T, const R: usize>(
        self,
        state: &mut [T],
        n: usize,
    ) -> ([&mut [T]; R], &mut [T]) {
        assert_eq!(R, self.rows, "a state of {} rows split into {R}", self.rows);
        let mut rest = state;
        let rows = std::array::from_fn(|_| {
            let (row, tail) = std::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            row
        });
        (rows, &mut rest[..self.shared])
    }
}

#[cfg(test)]
mod tests {
    use super::StateLayout;

    #[test]
    fn adam_state_is_m_v_then_the_two_corrections() {
        let state: Vec<usize> = (0..StateLayout::ADAM.len(3)).collect();
        assert_eq!(state.len(), 8);
        let ([m, v], c) = StateLayout::ADAM.split(&state, 3);
        assert_eq!((m, v, c), (&[0, 1, 2][..], &[3, 4, 5][..], &[6, 7][..]));
        assert_eq!(StateLayout::ADAM.row(1, 3), 3..6);
        assert_eq!(StateLayout::ADAM.shared_values(3), 6..8);
        assert_eq!(StateLayout::MOMENTUM.len(3), 3);
        assert!(StateLayout::SGD.is_empty());
    }
}
