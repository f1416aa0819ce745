//! The parameter block of each kernel family, one typed struct per family (see
//! [`convention`](super::convention)): the host fills its fields by name, and the
//! shaders read them by the same names from the WGSL declaration generated from it.

use super::convention::kernel_params;

kernel_params! {
    /// The linear layer's products (`shaders/linear.wgsl` and the generated product
    /// kernels): `x` is `n × k`, `w` is `m × k`, the output `n × m`.
    LinearParams {
        /// Rows of `x` (the batch).
        n: u32,
        /// Columns of `x` and `w` (the input width).
        k: u32,
        /// Rows of `w` (the output width).
        m: u32,
        /// The fused activation's code (`IDENTITY` for none).
        act: u32,
        /// LeakyReLU's slope, where `act` is LeakyReLU.
        slope: f32,
        /// 1 to add the gradients to the outputs, 0 to write over them.
        accumulate: u32,
    }
}

kernel_params! {
    /// The elementwise activations (`shaders/activation.wgsl`).
    ActivationParams {
        /// Elements of the tensors.
        count: u32,
        /// The activation's code.
        act: u32,
        /// LeakyReLU's slope, where `act` is LeakyReLU.
        slope: f32,
    }
}

kernel_params! {
    /// The mean-squared error and its gradient (`shaders/mse.wgsl`).
    MseParams {
        /// Elements of the prediction and the target.
        count: u32,
        /// 1 to add the loss to the loss slot, 0 to write over it.
        accumulate: u32,
        /// The loss's factor: 1 for a sum, 1/N for a mean.
        loss_scale: f32,
        /// The gradient's factor: 2, or 2/N for a mean.
        grad_scale: f32,
    }
}

kernel_params! {
    /// The cross-entropy loss and its gradient (`shaders/cross_entropy.wgsl`).
    CrossEntropyParams {
        /// Rows of the logits.
        rows: u32,
        /// Classes (columns of the logits).
        classes: u32,
        /// 1 to add the loss to the loss slot, 0 to write over it.
        accumulate: u32,
        /// The reduction's factor: 1 for a sum, 1/N for a mean over all N rows.
        scale: f32,
    }
}

kernel_params! {
    /// The optimizers' updates (`shaders/update.wgsl`).
    UpdateParams {
        /// Elements of the parameter.
        count: u32,
        /// The learning rate.
        lr: f32,
        /// SGD's momentum.
        momentum: f32,
        /// The L2 weight decay.
        weight_decay: f32,
        /// 1 for Nesterov's momentum.
        nesterov: u32,
        /// Adam's first-moment decay.
        beta1: f32,
        /// Adam's second-moment decay.
        beta2: f32,
        /// Adam's epsilon.
        eps: f32,
        /// Where the second moments start in Adam's state, from the state's start
        /// ([`StateLayout::ADAM`](crate::backend::StateLayout::ADAM)).
        second_moments: u32,
        /// Where the bias corrections start in Adam's state, from the state's start.
        corrections: u32,
    }
}

kernel_params! {
    /// Filling a tensor with one value (`shaders/fill.wgsl`).
    FillParams {
        /// Elements of the tensor.
        count: u32,
        /// The value.
        value: f32,
    }
}

kernel_params! {
    /// The whole-epoch MLP trainer (`shaders/mlp_fused.wgsl`): the views are the
    /// inputs, the targets, the packed parameters (read and written) and the losses.
    EpochParams {
        /// Rows of the data set's views (every run's together).
        rows: u32,
        /// The mini-batch size.
        batch: u32,
        /// Mini-batches this dispatch trains.
        batches: u32,
        /// The loss's reduction: 0 for a sum, 1 for a mean.
        mean: u32,
        /// The learning rate.
        lr: f32,
        /// Points of one run.
        run_rows: u32,
    }
}

kernel_params! {
    /// The image ops (`shaders/image.wgsl`): the geometry of a convolution, a max pool
    /// or an upsampling on an `(N, C, H, W)` batch (fields an op does not use are 0,
    /// strides and dilations 1).
    ImageParams {
        /// Elements the launch writes (one invocation each).
        count: u32,
        /// Images in the batch `N`.
        batch: u32,
        /// Input channels `C` (for pooling and upsampling, the channels).
        channels: u32,
        /// The convolution's output channels `O`.
        out_channels: u32,
        /// Input height.
        in_h: u32,
        /// Input width.
        in_w: u32,
        /// Output height.
        out_h: u32,
        /// Output width.
        out_w: u32,
        /// Window height.
        kernel_h: u32,
        /// Window width.
        kernel_w: u32,
        /// Vertical stride.
        stride_h: u32,
        /// Horizontal stride.
        stride_w: u32,
        /// Zero padding above and below.
        pad_h: u32,
        /// Zero padding left and right.
        pad_w: u32,
        /// Vertical spacing of the kernel taps.
        dil_h: u32,
        /// Horizontal spacing of the kernel taps.
        dil_w: u32,
        /// The upsampling's scale.
        scale: u32,
        /// 1 to add the parameter gradients to the outputs, 0 to write over them.
        accumulate: u32,
    }
}
