//! A steady-state training step allocates nothing on the host: a counting global
//! allocator measures the allocations of the epochs after the first two, and an epoch
//! of twice the steps must make as many (the per-epoch work, reading the losses and
//! calling the hook, is the same), the fewest of three epochs compared. On the CPU
//! backends exactly as many; on the GPU within one: how long the host waits for the
//! device changes wgpu's own allocations by one, either way (an epoch of 200 fused
//! steps against one of 100 on llvmpipe: 199 against 198 in about one run in four,
//! 198 against 199 too, 2026-12-02), while an allocation per step would add 100. On the CPU backends this holds on both paths; on
//! the GPU on the fused path, while a step-by-step step still allocates inside wgpu,
//! which processes the recorded commands when an encoder is submitted, about one
//! allocation per command (its count is printed, not asserted: it is wgpu's, not
//! minidl's; recording itself allocates nothing).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{gpu, rng};
use minidl::data::disc;
use minidl::nn::MseLoss;
use minidl::optim::Sgd;
use minidl::train::{fit, FitConfig};
use minidl::{seed, Backend, Cpu, Reference};

/// Counts the allocations (and reallocations) of the current thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

/// The allocations of this thread during a steady epoch of training the seed network
/// on `rows` points in mini-batches of 10 (the fewest of epochs 3, 4 and 5), and
/// whether it ran fused.
fn steady_epoch_allocations<B: Backend>(b: &B, rows: usize, fused: bool) -> (u64, bool) {
    let data = disc(rows, &mut rng(0)).unwrap();
    let mut model = seed::network(b, &mut rng(3)).unwrap();
    let mut loss = MseLoss::new(seed::REDUCTION);
    let mut sgd = Sgd::new(seed::LR).unwrap();
    let config = FitConfig {
        epochs: 5,
        fused,
        ..FitConfig::default()
    };
    let mut marks = [0u64; 5];
    let reports = fit(
        b,
        &mut model,
        &mut loss,
        &mut sgd,
        &data,
        &config,
        |r, _| {
            marks[r.epoch - 1] = allocations();
            Ok(())
        },
    )
    .unwrap();
    let fewest = marks.windows(2).skip(1).map(|w| w[1] - w[0]).min();
    (fewest.unwrap_or(0), reports[2].fused)
}

/// Asserts that an epoch of 200 steps allocates as often as one of 100, give or take
/// `jitter`, on the paths given.
fn assert_steps_allocate_nothing<B: Backend>(b: &B, paths: &[bool], jitter: u64) {
    for &fused in paths {
        let (short, ran_fused) = steady_epoch_allocations(b, 1000, fused);
        let (long, _) = steady_epoch_allocations(b, 2000, fused);
        assert_eq!(
            ran_fused, fused,
            "the fused path is taken exactly when asked"
        );
        assert!(
            long.abs_diff(short) <= jitter,
            "{} on {}: an epoch of 200 steps allocated {long} times, one of 100 {short} times",
            if fused { "fused" } else { "step by step" },
            b.name()
        );
    }
}

#[test]
fn a_steady_state_step_allocates_nothing_on_the_cpu() {
    assert_steps_allocate_nothing(&Cpu::with_threads(1).unwrap(), &[false, true], 0);
    assert_steps_allocate_nothing(&Cpu::with_threads(2).unwrap(), &[false, true], 0);
    assert_steps_allocate_nothing(&Reference, &[false, true], 0);
}

#[test]
fn a_steady_state_step_allocates_nothing_on_the_gpu() {
    if let Some(gpu) = gpu() {
        assert_steps_allocate_nothing(&gpu, &[true], 1);
        let (short, _) = steady_epoch_allocations(&gpu, 1000, false);
        let (long, _) = steady_epoch_allocations(&gpu, 2000, false);
        println!(
            "step by step on {}: {:.1} allocations per step (in wgpu's processing of the recorded commands at submission, about one per command)",
            gpu.name(),
            (long as f64 - short as f64) / 100.0
        );
    }
}
