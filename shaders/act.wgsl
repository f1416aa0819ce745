// The activations by code (Act::code in src/backend/act.rs; the constants IDENTITY,
// RELU, TANH, SIGMOID and LEAKY_RELU come from the generated prelude), prepended to
// every shader. `slope` is LeakyReLU's negative slope, ignored by the others.

// The logistic function 1 / (1 + e^(−z)): 0 for z below about −88 (e^(−z) overflows
// to infinity), 1 above about 17.
fn sigmoid(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-z));
}

// act(z). ReLU with select, not max: the same bits for -0 and NaN. tanh is ±1 beyond
// |z| > 10, which changes no f32 result (tanh(z) rounds to ±1 once |z| > 9.02) and
// keeps drivers that evaluate tanh through exponentials from overflowing to NaN for
// large |z|, while a NaN input still gives NaN, as on the CPU.
fn activate(z: f32, act: u32, slope: f32) -> f32 {
    if (act == RELU) {
        return select(0.0, z, z > 0.0);
    }
    if (act == TANH) {
        return select(tanh(z), sign(z), abs(z) > 10.0);
    }
    if (act == SIGMOID) {
        return sigmoid(z);
    }
    if (act == LEAKY_RELU) {
        return select(slope * z, z, z > 0.0);
    }
    return z;
}

// The gradient with respect to an activation's input, from the gradient `dy` with
// respect to its output and the saved value `s`: the input or the output for ReLU and
// LeakyReLU (s > 0 exactly where z > 0), the output for tanh (1 − s²) and the sigmoid
// (s (1 − s)).
fn gate(dy: f32, s: f32, act: u32, slope: f32) -> f32 {
    if (act == RELU) {
        return select(0.0, dy, s > 0.0);
    }
    if (act == TANH) {
        return dy * (1.0 - s * s);
    }
    if (act == SIGMOID) {
        return dy * (s * (1.0 - s));
    }
    if (act == LEAKY_RELU) {
        return select(slope * dy, dy, s > 0.0);
    }
    return dy;
}
