//! Fuzzes the model-list parser and the model builder: any text, parsed as
//! `train --model`'s layer list, must give layers or an error naming a token, never a
//! panic or a hang; what parses is built on a small image (on the reference backend),
//! which must give a network or an error naming the layer. Run it with
//! `mkdir -p fuzz/corpus/model_list && cargo +nightly fuzz run model_list fuzz/corpus/model_list fuzz/seeds/model_list`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use minidl::nn::{build_model, parse_model, RowShape};
use minidl::Reference;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(layers) = parse_model(text) {
        // Sizes bounded so that a list asking for huge layers stays cheap to refuse.
        let input = RowShape::Image {
            channels: 2,
            height: 9,
            width: 7,
        };
        let small = layers.iter().all(|l| match *l {
            minidl::nn::LayerSpec::Conv { out, kernel, .. } => {
                out <= 64 && kernel.0 <= 16 && kernel.1 <= 16
            }
            minidl::nn::LayerSpec::Linear(n) => n <= 4096,
            minidl::nn::LayerSpec::Upsample(s) => s <= 8,
            _ => true,
        });
        if small {
            let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(0);
            let _ = build_model(&Reference, &layers, input, &mut rng);
        }
    }
});
