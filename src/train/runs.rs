//! Many independent training runs: [`run_many`] runs them on several threads where the
//! backend computes on the calling thread (the CPU), or one after another.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Runs `run(0)`, …, `run(count − 1)` on up to `threads` threads (each taking the next
/// index not yet taken) and returns their results in index order, or the error of the
/// lowest index that failed. With `threads` = 1 they run in turn on the calling thread.
/// Each run must depend on its index alone, so that its result is the same as when it
/// runs by itself: on the CPU backend, bit for bit.
pub fn run_many<T: Send>(
    count: usize,
    threads: usize,
    run: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if threads == 0 {
        return Err(Error::InvalidArgument(
            "run_many needs at least 1 thread".into(),
        ));
    }
    let threads = threads.min(count.max(1));
    if threads == 1 {
        return (0..count).map(run).collect();
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..count).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let result = run(i);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::InvalidArgument("a run did not finish".into()))))
        .collect()
}
