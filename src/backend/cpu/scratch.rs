//! Per-thread scratch vectors for the [`Cpu`](crate::Cpu) backend's kernels: each kept
//! from call to call, so that a step allocates nothing once they have grown.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A thread-local scratch vector, declared with `thread_local!` beside the kernel that
/// uses it.
pub(crate) type Scratch = LocalKey<RefCell<Vec<f32>>>;

/// Runs `f` on a scratch vector of `len` elements from `key` (contents unspecified),
/// or on a fresh one where the thread's is already in use (a nested call).
pub(crate) fn with_scratch<R>(
    key: &'static Scratch,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}
