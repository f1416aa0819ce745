// The activations a kernel can apply after a linear layer, by code (Act::code in
// src/backend/mlp.rs), prepended to every shader.

const IDENTITY: u32 = 0u;
const RELU: u32 = 1u;
const TANH: u32 = 2u;
const SIGMOID: u32 = 3u;

// The logistic function 1 / (1 + e^(−z)): 0 for z below about −88 (e^(−z) overflows
// to infinity), 1 above about 17.
fn sigmoid(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-z));
}

// act(z). ReLU as the standalone kernel computes it (select, not max: the same bits
// for -0 and NaN).
fn activate(z: f32, act: u32) -> f32 {
    if (act == RELU) {
        return select(0.0, z, z > 0.0);
    }
    if (act == TANH) {
        return tanh(z);
    }
    if (act == SIGMOID) {
        return sigmoid(z);
    }
    return z;
}

// The gradient with respect to a pre-activation, from the gradient `dy` with
// respect to the output `y` (y > 0 exactly where z > 0 for ReLU; 1 − y² for tanh; y (1 − y) for the
// sigmoid).
fn gate(dy: f32, y: f32, act: u32) -> f32 {
    if (act == RELU) {
        return select(0.0, dy, y > 0.0);
    }
    if (act == TANH) {
        return dy * (1.0 - y * y);
    }
    if (act == SIGMOID) {
        return dy * (y * (1.0 - y));
    }
    return dy;
}
