//! The tuner's cache file: a damaged, foreign or stale file means measuring again and
//! rewriting it, never a wrong kernel or lowering; a good file is used as it is;
//! `MINIDL_TUNE=off` measures nothing. For the products' kernels and the convolution's
//! lowering alike. One test, alone in its binary, because the cache's place is an
//! environment variable of the process.

mod common;

use common::gpu;
use minidl::backend::gpu::products::{Choice, Product, TUNE_CACHE_ENV, TUNE_ENV};
use minidl::backend::gpu::{ConvLowering, ConvPass};
use minidl::backend::{Conv2dGeometry, Conv2dSpec};
use minidl::Gpu;

#[test]
fn the_tuning_cache_survives_damage_and_is_used_when_sound() {
    if gpu().is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("minidl-tuning-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tuning.txt");
    // This binary's only test sets them.
    std::env::set_var(TUNE_CACHE_ENV, &file);
    std::env::remove_var(TUNE_ENV);
    let (n, k, m) = (256, 512, 256);
    let header = format!("minidl tuning cache 4 {}", env!("CARGO_PKG_VERSION"));
    // The shape class of a forward with x: n×k, w: m×k: output rows × columns × depth.
    let key = "forward 256x256x512";
    let adapter = {
        let a = Gpu::new().unwrap().adapter().clone();
        format!("{}|{}|{}", a.name, a.backend, a.driver)
    };
    let damaged: [(&str, String); 8] = [
        ("garbage", "\u{0}\u{1}not a cache at all\n".into()),
        (
            "the format before db joined the weight-gradient kernels",
            format!(
                "minidl tuning cache 1 {}\n{adapter}\tforward 256x512x256\ttiled\n",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        (
            "the format whose shape classes were the linear layer's n×k×m",
            format!(
                "minidl tuning cache 2 {}\n{adapter}\tforward 256x512x256\ttiled\n",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        (
            "the format before the convolution's lowerings joined",
            format!(
                "minidl tuning cache 3 {}\n{adapter}\t{key}\ttiled\n",
                env!("CARGO_PKG_VERSION")
            ),
        ),
        (
            "another version",
            format!("minidl tuning cache 4 0.0.0-other\n{adapter}\t{key}\ttiled\n"),
        ),
        (
            "a truncated line",
            format!("{header}\n{adapter}\tforward 256x51"),
        ),
        (
            "a kernel this device cannot run",
            format!("{header}\n{adapter}\t{key}\t999x12/7\n"),
        ),
        (
            "another adapter's entry",
            format!("{header}\nsome other GPU|Vulkan|x\t{key}\tnaive\n"),
        ),
    ];
    let mut measured = None;
    for (what, text) in damaged {
        std::fs::write(&file, text).unwrap();
        // A fresh device: nothing chosen in memory yet.
        let gpu = Gpu::new().unwrap();
        let before = gpu.stats();
        let choice = gpu.product_choice(Product::Forward, n, k, m).unwrap();
        assert!(
            gpu.stats().dispatches > before.dispatches,
            "{what}: {choice:?} was chosen without measuring"
        );
        measured = Some(choice);
        assert!(
            gpu.product_candidates(Product::Forward, n, k, m)
                .contains(&choice),
            "{what}: {choice:?} is not a candidate"
        );
        let rewritten = std::fs::read_to_string(&file).unwrap();
        assert!(
            rewritten.starts_with(&header)
                && rewritten.contains(&format!("{adapter}\t{key}\t{}", choice.label())),
            "{what}: the file was not rewritten with the measured choice:\n{rewritten}"
        );
    }
    // A sound entry is taken as it is, without measuring: nothing runs on the device,
    // and the kernel the file names comes back, whichever measuring picked above. The
    // file names the naive kernel, or the tiled one where measuring picked the naive.
    let named = match measured.unwrap() {
        Choice::Naive => Choice::Tiled,
        _ => Choice::Naive,
    };
    std::fs::write(
        &file,
        format!("{header}\n{adapter}\t{key}\t{}\n", named.label()),
    )
    .unwrap();
    let gpu = Gpu::new().unwrap();
    let before = gpu.stats();
    assert_eq!(
        gpu.product_choice(Product::Forward, n, k, m).unwrap(),
        named
    );
    assert_eq!(gpu.stats(), before, "a sound entry was measured again");
    // The convolution's lowering: 16 images of 16×16 pixels into 16 channels, 2¹⁹
    // forward multiply-adds, above the measuring threshold.
    let spec = Conv2dSpec::new(1, 16, (3, 3)).with_padding((1, 1));
    let g = Conv2dGeometry::new("test", &spec, 16, (16, 16)).unwrap();
    let pass = ConvPass::Forward;
    let conv_key = "conv2d forward 16x1x16x16>16 k3x3 s1x1 p1x1 d1x1";
    let mut measured = None;
    for (what, text) in [
        ("no entry", header.clone()),
        (
            "an unknown lowering",
            format!("{header}\n{adapter}\t{conv_key}\tsideways\n"),
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let gpu = Gpu::new().unwrap();
        let before = gpu.stats();
        let lowering = gpu.conv_lowering(&g, pass).unwrap();
        assert!(
            gpu.stats().dispatches > before.dispatches,
            "{what}: {lowering:?} was chosen without measuring"
        );
        let rewritten = std::fs::read_to_string(&file).unwrap();
        assert!(
            rewritten.contains(&format!("{adapter}\t{conv_key}\t{}", lowering.label())),
            "{what}: the file was not rewritten with the measured lowering:\n{rewritten}"
        );
        measured = Some(lowering);
    }
    // A sound entry naming the other lowering is taken without measuring.
    let named = measured.unwrap().other();
    std::fs::write(
        &file,
        format!("{header}\n{adapter}\t{conv_key}\t{}\n", named.label()),
    )
    .unwrap();
    let gpu = Gpu::new().unwrap();
    let before = gpu.stats();
    assert_eq!(gpu.conv_lowering(&g, pass).unwrap(), named);
    assert_eq!(gpu.stats(), before, "a sound lowering was measured again");
    // Measuring off: the fixed rules, and the file is not touched.
    std::fs::remove_file(&file).unwrap();
    std::env::set_var(TUNE_ENV, "off");
    let gpu = Gpu::new().unwrap();
    let before = gpu.stats();
    let choice = gpu.product_choice(Product::Forward, n, k, m).unwrap();
    assert_eq!(
        gpu.conv_lowering(&g, pass).unwrap(),
        ConvLowering::fixed_rule(&g)
    );
    assert_eq!(gpu.stats(), before, "MINIDL_TUNE=off measured");
    assert!(gpu
        .product_candidates(Product::Forward, n, k, m)
        .contains(&choice));
    assert!(!file.exists(), "MINIDL_TUNE=off wrote the cache");
    std::fs::remove_dir_all(&dir).unwrap();
}
