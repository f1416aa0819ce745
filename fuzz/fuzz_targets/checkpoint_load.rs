//! Fuzzes the checkpoint loader: any bytes, parsed as a safetensors file and loaded into
//! the seed network on the CPU backend, must give `Ok` or an error, never a panic, a
//! hang or an out-of-bounds access (the fuzzer builds with AddressSanitizer).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use minidl::nn::Sequential;
use minidl::{checkpoint, seed, Cpu};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

/// The backend on one thread: every op on the fuzzer's thread.
fn cpu() -> Cpu {
    Cpu::with_threads(1).expect("a one-thread CPU backend")
}

thread_local! {
    static MODEL: Sequential<Cpu> =
        seed::network(&cpu(), &mut ChaCha8Rng::seed_from_u64(0)).expect("the seed network");
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input.safetensors");
    let _ = checkpoint::parse(data, path);
    MODEL.with(|model| {
        let _ = checkpoint::load_bytes(&cpu(), model, data, path);
    });
});
