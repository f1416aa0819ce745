//! The convolutional layers and model lists: a small convolutional network trained a
//! few steps on the fast backends ends where the reference's training ends; model
//! lists parse as PyTorch's words say, never panic, and name the offending token; a
//! geometry that cannot work is an error naming the layer when the model is built;
//! parameters carry PyTorch's `state_dict` names and shapes.

mod common;

use common::{assert_close_to_largest, gpu, random, rng};
use minidl::data::Dataset;
use minidl::nn::{
    build_model, describe, parse_model, CrossEntropyLoss, LayerSpec, Module, RowShape, Sequential,
};
use minidl::optim::Sgd;
use minidl::train::{fit, FitConfig, Fusion};
use minidl::{Backend, Cpu, Error, Ops, Reduction, Reference};
use proptest::prelude::*;

/// A small network with every image layer: stride, padding and dilation, pooling with
/// a stride of its own, upsampling, flattening.
const SMALL: &str = "conv(4,3,padding=1,dilation=2),relu,maxpool(3,stride=2),upsample(2),\
                     conv(3,2,stride=2),tanh,flatten,linear(5),sigmoid,linear(3)";

/// Sizes that differ between height and width everywhere, convolutions without a
/// bias, pooling with padding: 11×9 → conv 3×6×7 → pool 3×6×3 → conv 2×5×1.
const RECTANGULAR: &str = "conv(3,(3,2),stride=(2,1),padding=(1,0),dilation=(1,2),bias=false),\
                           relu,maxpool((3,2),stride=(1,2),padding=(1,0)),\
                           conv(2,kernel_size=(2,3),bias=False),flatten,linear(3)";

/// Average pooling, with and without padding and a stride of its own: 11×9 → conv
/// 4×11×9 → pool 4×5×4 → conv 3×4×3 → pool (3, stride 2, padding 1) 3×2×2.
const AVERAGED: &str = "conv(4,3,padding=1),relu,avgpool(2),conv(3,2),tanh,\
                        avgpool(3,stride=2,padding=1),flatten,linear(3)";

/// 1×11×9 images: odd, not square.
fn image() -> RowShape {
    RowShape::Image {
        channels: 1,
        height: 11,
        width: 9,
    }
}

fn small_model<B: Backend>(b: &B) -> Sequential<B> {
    model(b, SMALL)
}

/// The network `list` on [`image`]s, initialised from seed 7.
fn model<B: Backend>(b: &B, list: &str) -> Sequential<B> {
    let layers = parse_model(list).unwrap();
    build_model(b, &layers, image(), &mut rng(7)).unwrap().0
}

/// The parameters of the network `list` after 18 mini-batches of SGD with momentum on
/// random images.
fn trained<B: Backend>(b: &B, list: &str) -> Vec<Vec<f32>> {
    let mut r = rng(11);
    let rows = 40;
    let inputs = random(&mut r, rows, 99, -1.0, 1.0);
    let labels = (0..rows).map(|i| (i * 7) % 3).collect();
    let data = Dataset::new(inputs, labels, 3).unwrap();
    let mut model = model(b, list);
    let mut loss = CrossEntropyLoss::new(Reduction::Mean);
    let mut sgd = Sgd::with(minidl::optim::MomentumStep {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 0.0,
        nesterov: false,
    })
    .unwrap();
    let config = FitConfig {
        epochs: 3,
        batch_size: 7,
        fused: Fusion::Never,
        ..FitConfig::default()
    };
    fit(
        b,
        &mut model,
        &mut loss,
        &mut sgd,
        &data,
        &config,
        |_, _| Ok(()),
    )
    .unwrap();
    model
        .parameters()
        .iter()
        .map(|p| b.download(p.value).unwrap().data().to_vec())
        .collect()
}

/// Training moves the parameters, and the fast backend's end where the reference's does
/// (within a small fraction of each parameter's largest value: 18 steps compound the
/// rounding of every op).
fn assert_trains_like_reference<B: Backend>(b: &B, label: &str) {
    for list in [SMALL, RECTANGULAR, AVERAGED] {
        let want = trained(&Reference, list);
        let got = trained(b, list);
        let start: Vec<Vec<f32>> = model(&Reference, list)
            .parameters()
            .iter()
            .map(|p| Reference.download(p.value).unwrap().data().to_vec())
            .collect();
        assert_ne!(want, start, "training changed the parameters");
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close_to_largest(&format!("{label} {list} parameter {i}"), g, w, 1e-4);
        }
    }
}

#[test]
fn a_convolutional_network_trains_on_the_cpu_as_on_the_reference() {
    for threads in [1, 2] {
        let cpu = Cpu::with_threads(threads).unwrap();
        assert_trains_like_reference(&cpu, &format!("cpu ×{threads}"));
    }
}

#[test]
fn a_convolutional_network_trains_on_the_gpu_as_on_the_reference() {
    let Some(gpu) = gpu() else { return };
    assert_trains_like_reference(&gpu, "gpu");
}

#[test]
fn parameters_carry_pytorch_names_and_shapes() {
    let model = small_model(&Reference);
    let params: Vec<(String, Vec<usize>)> = model
        .parameters()
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone()))
        .collect();
    // The shapes PyTorch's nn.Sequential of the same layers gives: 11×9 → conv (pad 1,
    // dilation 2, k 3) 9×7 → pool (3, stride 2) 4×3 → upsample 8×6 → conv (k 2,
    // stride 2) 4×3, so 3·4·3 = 36 features.
    let want = [
        ("0.weight", vec![4, 1, 3, 3]),
        ("0.bias", vec![4]),
        ("4.weight", vec![3, 4, 2, 2]),
        ("4.bias", vec![3]),
        ("7.weight", vec![5, 36]),
        ("7.bias", vec![5]),
        ("9.weight", vec![3, 5]),
        ("9.bias", vec![3]),
    ];
    let want: Vec<(String, Vec<usize>)> =
        want.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    assert_eq!(params, want);
}

#[test]
fn a_convolution_without_bias_has_only_its_weight() {
    // PyTorch's names and shapes for the rectangular network: 11×9 → 3×6×7 → 3×6×3 →
    // 2×5×1, so 10 features; no bias tensor for either convolution.
    let params: Vec<(String, Vec<usize>)> = model(&Reference, RECTANGULAR)
        .parameters()
        .iter()
        .map(|p| (p.name.clone(), p.shape.clone()))
        .collect();
    let want = [
        ("0.weight", vec![3, 1, 3, 2]),
        ("3.weight", vec![2, 3, 2, 3]),
        ("5.weight", vec![3, 10]),
        ("5.bias", vec![3]),
    ];
    let want: Vec<(String, Vec<usize>)> =
        want.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
    assert_eq!(params, want);

    // The weight is drawn as with a bias (PyTorch draws the weight first), and the
    // layer computes what the same weight with a zero bias computes.
    let spec = minidl::backend::Conv2dSpec::new(2, 3, (3, 2)).with_padding((1, 0));
    let mut with = minidl::nn::Conv2d::new(&Reference, spec, (5, 4), &mut rng(3)).unwrap();
    let mut without =
        minidl::nn::Conv2d::without_bias(&Reference, spec, (5, 4), &mut rng(3)).unwrap();
    let weight = Reference.download(with.weight()).unwrap();
    assert_eq!(weight, Reference.download(without.weight()).unwrap());
    assert!(with.bias().is_some() && without.bias().is_none());
    assert!(without.name().contains("no bias"), "{}", without.name());
    let shaped = minidl::Tensor::new(&[3, 2, 3, 2], weight.data().to_vec()).unwrap();
    let zero_bias = minidl::Tensor::zeros(&[3]);
    let mut zeroed =
        minidl::nn::Conv2d::from_tensors(&Reference, spec, (5, 4), &shaped, &zero_bias).unwrap();
    let x = Reference
        .upload(&random(&mut rng(4), 3, 40, -1.0, 1.0))
        .unwrap();
    let y = Reference
        .download(without.forward(&Reference, &x).unwrap())
        .unwrap();
    let y_zeroed = Reference
        .download(zeroed.forward(&Reference, &x).unwrap())
        .unwrap();
    assert_eq!(y, y_zeroed);
    let y_with = Reference
        .download(with.forward(&Reference, &x).unwrap())
        .unwrap();
    assert_ne!(y, y_with, "the drawn bias changes the output");
    // A weight of the wrong shape is refused, naming the layer.
    let e = minidl::nn::Conv2d::from_weight(&Reference, spec, (5, 4), &zero_bias)
        .err()
        .unwrap();
    assert!(e.to_string().contains("no bias"), "{e}");
}

#[test]
fn model_lists_take_pytorchs_pairs_and_keywords() {
    let list = "conv(4,(3,5),stride=(1,2),padding=(1,2),dilation=(2,1),bias=false),\
                maxpool(kernel_size=(3,2),stride=(2,1),padding=1),conv(2,kernel_size=3),\
                upsample(scale_factor=2)";
    let layers = parse_model(list).unwrap();
    assert_eq!(
        layers,
        vec![
            LayerSpec::Conv {
                out: 4,
                kernel: (3, 5),
                stride: (1, 2),
                padding: (1, 2),
                dilation: (2, 1),
                bias: false,
            },
            LayerSpec::MaxPool {
                kernel: (3, 2),
                stride: (2, 1),
                padding: (1, 1),
            },
            LayerSpec::Conv {
                out: 2,
                kernel: (3, 3),
                stride: (1, 1),
                padding: (0, 0),
                dilation: (1, 1),
                bias: true,
            },
            LayerSpec::Upsample(2),
        ]
    );
    // Written back, the list parses to the same layers; pairs of equal sides are
    // written as one number.
    let again: Vec<String> = layers.iter().map(describe).collect();
    assert_eq!(
        again[0],
        "conv(4,(3,5),stride=(1,2),padding=(1,2),dilation=(2,1),bias=false)"
    );
    assert_eq!(again[1], "maxpool((3,2),stride=(2,1),padding=1)");
    assert_eq!(parse_model(&again.join(",")).unwrap(), layers);
    // Average pooling takes the same words, in PyTorch's spelling too.
    let pools = parse_model("AvgPool2d(kernel_size=(3,2),stride=(2,1),padding=1),MaxPool2d(2)");
    let (kernel, stride, padding) = ((3, 2), (2, 1), (1, 1));
    let averaged = LayerSpec::AvgPool {
        kernel,
        stride,
        padding,
    };
    let window = (2, 2);
    let maximum = LayerSpec::MaxPool {
        kernel: window,
        stride: window,
        padding: (0, 0),
    };
    assert_eq!(pools.unwrap(), vec![averaged, maximum]);
    assert_eq!(describe(&averaged), "avgpool((3,2),stride=(2,1),padding=1)");
    assert_eq!(parse_model(&describe(&averaged)).unwrap(), vec![averaged]);
    // The shapes follow PyTorch's formula per side: 1×28×28 → conv 4×26×14 → pool
    // (3×2, stride (2, 1), padding 1) 4×13×15 → conv 2×11×13 → upsample 2×22×26.
    let input = RowShape::Image {
        channels: 1,
        height: 28,
        width: 28,
    };
    let (_, out) = build_model(&Reference, &layers, input, &mut rng(0)).unwrap();
    assert_eq!(
        out,
        RowShape::Image {
            channels: 2,
            height: 22,
            width: 26
        }
    );
}

#[test]
fn model_lists_parse_into_pytorchs_layers() {
    let lenet = "conv(6,5,padding=2),relu,maxpool(2),conv(16,5),relu,maxpool(2),flatten,\
                 linear(120),relu,linear(84),relu,linear(10)";
    let layers = parse_model(lenet).unwrap();
    assert_eq!(layers.len(), 12);
    assert_eq!(
        layers[0],
        LayerSpec::Conv {
            out: 6,
            kernel: (5, 5),
            stride: (1, 1),
            padding: (2, 2),
            dilation: (1, 1),
            bias: true,
        }
    );
    assert_eq!(
        layers[2],
        LayerSpec::MaxPool {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
        }
    );
    assert_eq!(layers[11], LayerSpec::Linear(10));
    // Written back, a list parses to the same layers.
    let again: Vec<String> = layers.iter().map(describe).collect();
    assert_eq!(parse_model(&again.join(",")).unwrap(), layers);
    assert_eq!(
        parse_model(" Conv( 8 , 3 , stride = 2 ) , LeakyReLU(0.2), upsample(3)").unwrap(),
        vec![
            LayerSpec::Conv {
                out: 8,
                kernel: (3, 3),
                stride: (2, 2),
                padding: (0, 0),
                dilation: (1, 1),
                bias: true,
            },
            LayerSpec::LeakyRelu(0.2),
            LayerSpec::Upsample(3)
        ]
    );
    assert_eq!(
        parse_model("leakyrelu").unwrap(),
        vec![LayerSpec::LeakyRelu(0.01)]
    );
}

#[test]
fn a_model_list_that_does_not_parse_names_the_token() {
    for (list, token) in [
        ("conv(6,5),rleu,flatten", "rleu"),
        ("conv(6)", "conv(6)"),
        ("conv(6,0)", "conv(6,0)"),
        ("conv(6,5,stride=0)", "conv(6,5,stride=0)"),
        ("conv(6,5,pad=1)", "conv(6,5,pad=1)"),
        (
            "maxpool(2,stride=1,stride=2)",
            "maxpool(2,stride=1,stride=2)",
        ),
        ("linear(-3)", "linear(-3)"),
        ("relu(1)", "relu(1)"),
        ("linear(10),", ""),
        ("conv(6,5", "conv(6,5"),
        ("upsample(2))", "upsample(2))"),
        ("leakyrelu(nan)", "leakyrelu(nan)"),
        ("conv(6,(3,5,7))", "conv(6,(3,5,7))"),
        ("conv(6,(3,0))", "conv(6,(3,0))"),
        ("conv(6,5,kernel_size=3)", "conv(6,5,kernel_size=3)"),
        ("conv(6,5,bias=maybe)", "conv(6,5,bias=maybe)"),
        ("conv(6,5,stride=(2,))", "conv(6,5,stride=(2,))"),
        ("maxpool(stride=2)", "maxpool(stride=2)"),
        ("upsample((2,2))", "upsample((2,2))"),
        ("", ""),
    ] {
        let e = parse_model(list).unwrap_err();
        assert_eq!(e.token.trim(), token, "{list:?}: {e}");
        assert!(!e.reason.is_empty());
    }
}

/// The error of building `list` on `input`.
fn build_error(list: &str, input: RowShape) -> Error {
    let layers = parse_model(list).unwrap();
    match build_model(&Reference, &layers, input, &mut rng(0)) {
        Ok(_) => panic!("{list} built"),
        Err(e) => e,
    }
}

#[test]
fn a_geometry_that_cannot_work_is_an_error_naming_the_layer() {
    let mnist = RowShape::Image {
        channels: 1,
        height: 28,
        width: 28,
    };
    // A kernel larger than the padded input.
    let e = build_error(
        "conv(6,5),relu,maxpool(2),conv(16,5),maxpool(2),conv(4,5)",
        mnist,
    );
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    assert!(e.to_string().contains("layer 5 (conv(4,5))"), "{e}");
    // An output of size 0 after pooling.
    let e = build_error("maxpool(29)", mnist);
    assert!(e.to_string().contains("layer 0 (maxpool(29))"), "{e}");
    // Pooling padding over half the window (PyTorch's rule), on one side only.
    let e = build_error("maxpool((2,4),padding=(1,3))", mnist);
    assert!(
        e.to_string()
            .contains("layer 0 (maxpool((2,4),padding=(1,3)))"),
        "{e}"
    );
    // A kernel that fits the height but not the width.
    let e = build_error("conv(2,(3,29))", mnist);
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    assert!(e.to_string().contains("conv(2,(3,29))"), "{e}");
    // A Linear whose width is not the flattened size, in a network put together by
    // hand: Sequential names both layers.
    let conv = minidl::nn::Conv2d::new(
        &Reference,
        minidl::backend::Conv2dSpec::new(1, 6, (5, 5)),
        (28, 28),
        &mut rng(0),
    )
    .unwrap();
    let linear = minidl::nn::Linear::new(&Reference, 3456 + 1, 10, &mut rng(0)).unwrap();
    let layers: Vec<Box<dyn Module<Reference>>> = vec![
        Box::new(conv),
        Box::new(minidl::nn::Flatten::new()),
        Box::new(linear),
    ];
    let e = Sequential::new(layers).err().unwrap();
    let text = e.to_string();
    assert!(matches!(e, Error::Shape { .. }), "{text}");
    assert!(
        text.contains("Conv2d(1→6, 5×5)") && text.contains("Linear(3457→10)"),
        "{text}"
    );
    let layers = parse_model("conv(6,5),flatten,linear(10)").unwrap();
    let (model, out) = build_model(&Reference, &layers, mnist, &mut rng(0)).unwrap();
    assert_eq!(out, RowShape::Flat(10));
    assert_eq!(model.widths(), Some((784, 10)));
    // Images where flat rows are given, flat rows where images are needed.
    let e = build_error("conv(6,5)", RowShape::Flat(784));
    assert!(e.to_string().contains("layer 0 (conv(6,5))"), "{e}");
    let e = build_error("linear(10)", mnist);
    assert!(e.to_string().contains("flatten"), "{e}");
    // Channels that do not match a loaded weight.
    let spec = minidl::backend::Conv2dSpec::new(3, 2, (3, 3));
    let w = minidl::Tensor::new(&[2, 1, 3, 3], vec![0.0; 18]).unwrap();
    let b = minidl::Tensor::new(&[2], vec![0.0; 2]).unwrap();
    let e = minidl::nn::Conv2d::from_tensors(&Reference, spec, (5, 5), &w, &b)
        .err()
        .unwrap();
    assert!(e.to_string().contains("Conv2d(3→2, 3×3)"), "{e}");
}

#[test]
fn a_layer_rejects_input_of_another_width() {
    let mut model = small_model(&Reference);
    let x = Reference.alloc(2, 98).unwrap();
    let e = model.forward(&Reference, &x).err().unwrap();
    assert!(e.to_string().contains("Conv2d"), "{e}");
}

proptest! {
    /// Any text: a list of layers or an error naming a token of it, never a panic.
    #[test]
    fn parsing_any_text_never_panics(text in ".{0,60}") {
        if let Err(e) = parse_model(&text) {
            prop_assert!(text.contains(e.token.trim()) || e.token == text);
        }
    }

    /// Lists made of real layer names with arbitrary arguments: parsed or refused,
    /// never a panic, and what parses builds or fails with an error.
    #[test]
    fn layer_like_lists_parse_or_fail_cleanly(
        parts in proptest::collection::vec(
            (prop::sample::select(vec!["conv", "maxpool", "avgpool", "upsample", "linear", "flatten", "relu", "leakyrelu"]),
             proptest::collection::vec(0usize..6, 0..3),
             prop::sample::select(vec!["", ",stride=2", ",padding=1", ",dilation=2", ",stride=0",
                                       ",stride=(2,1)", ",padding=(0,2)", ",dilation=(1,3)",
                                       ",bias=false", ",kernel_size=(2,1)", ",padding=(1,)",
                                       ",scale_factor=2"])),
            1..5)
    ) {
        let list: Vec<String> = parts
            .iter()
            .map(|(name, args, named)| {
                let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
                format!("{name}({}{named})", args.join(","))
            })
            .collect();
        let list = list.join(",");
        if let Ok(layers) = parse_model(&list) {
            let input = RowShape::Image { channels: 2, height: 7, width: 6 };
            let _ = build_model(&Reference, &layers, input, &mut rng(0));
        }
    }
}
