//! The transpose of a row-major matrix on the [`Cpu`](crate::Cpu) backend, in 8×8
//! blocks (eight loads of eight values, eight stores of eight) over strips of
//! [`STRIP`] output rows, the strips on the backend's threads. A strip's reads are
//! whole cache lines of the input and its writes [`STRIP`] sequential streams, so
//! that neither side walks memory at a large power-of-two stride (where every access
//! would fall into the same cache set).

use rayon::prelude::*;
use rayon::ThreadPool;

/// Output rows per strip: one 64-byte cache line of each input row.
const STRIP: usize = 16;

/// Side of the blocks moved through registers.
const BLOCK: usize = 8;

/// `out (cols × rows) = aᵀ` for `a` of `rows × cols`, both row-major; on `pool` when
/// given.
pub(crate) fn transpose(
    pool: Option<&ThreadPool>,
    a: &[f32],
    (rows, cols): (usize, usize),
    out: &mut [f32],
) {
    let out = &mut out[..rows * cols];
    if rows == 0 || cols == 0 {
        return;
    }
    let strip = |(s, o): (usize, &mut [f32])| transpose_strip(a, (rows, cols), s * STRIP, o);
    match pool {
        Some(pool) => pool.install(|| out.par_chunks_mut(STRIP * rows).enumerate().for_each(strip)),
        None => out.chunks_mut(STRIP * rows).enumerate().for_each(strip),
    }
}

/// Output rows `first..first + out.len() / rows` of [`transpose`], that is input
/// columns `first..`: the full 8×8 blocks, then the ragged edges one value at a time.
fn transpose_strip(a: &[f32], (rows, cols): (usize, usize), first: usize, out: &mut [f32]) {
    let width = out.len() / rows;
    let (full_rows, full_width) = (rows / BLOCK * BLOCK, width / BLOCK * BLOCK);
    for r in (0..full_rows).step_by(BLOCK) {
        for c in (0..full_width).step_by(BLOCK) {
            let block: [[f32; BLOCK]; BLOCK] = std::array::from_fn(|i| {
                let at = (r + i) * cols + first + c;
                a[at..at + BLOCK].try_into().expect("a block row")
            });
            let columns = out[c * rows..].chunks_mut(rows);
            for (j, column) in columns.take(BLOCK).enumerate() {
                let values: [f32; BLOCK] = std::array::from_fn(|i| block[i][j]);
                column[r..r + BLOCK].copy_from_slice(&values);
            }
        }
    }
    for c in 0..width {
        let rows_done = if c < full_width { full_rows } else { 0 };
        for r in rows_done..rows {
            out[c * rows + r] = a[r * cols + first + c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element lands where the definition puts it, on shapes with ragged edges
    /// in both directions, with and without threads.
    #[test]
    fn transposes_every_shape() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (rows, cols) in [
            (1, 1),
            (1, 9),
            (9, 1),
            (8, 8),
            (7, 17),
            (16, 16),
            (33, 40),
            (24, 1024),
        ] {
            let a: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            for threads in [None, Some(&pool)] {
                let mut out = vec![f32::NAN; rows * cols];
                transpose(threads, &a, (rows, cols), &mut out);
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(
                            out[c * rows + r],
                            a[r * cols + c],
                            "{rows}×{cols} at ({r}, {c})"
                        );
                    }
                }
            }
        }
    }
}
