//! The one error type of the crate: every fallible public function returns
//! [`Result<T>`](Result), and no user input makes the library panic.

/// Everything that can go wrong in minidl, with a message that says what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two tensors (or a tensor and a layer) do not fit together. `context` names the
    /// operation or layer, `detail` gives the shapes involved.
    #[error("shape mismatch in {context}: {detail}")]
    Shape {
        /// The operation or layer where the mismatch was found.
        context: String,
        /// What was expected and what was given.
        detail: String,
    },
    /// An argument that is out of its domain (a batch size of 0, a learning rate
    /// that is not a positive finite number, an empty data set, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An operation was asked to write into a buffer that it also reads.
    #[error("{op}: the output must not share a buffer with an input")]
    Aliasing {
        /// The operation that was called.
        op: &'static str,
    },
    /// A tensor is larger than the backend can hold in one buffer binding.
    #[error("{what} needs {bytes} bytes, over the adapter's limit of {limit} bytes")]
    TooLarge {
        /// What was being allocated or dispatched.
        what: String,
        /// The size that was asked for.
        bytes: u64,
        /// The adapter's limit.
        limit: u64,
    },
    /// No GPU adapter is usable (none present, or none matches the requested name).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The GPU device reported an error (validation, out of memory, ...).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The CPU backend could not start its worker threads.
    #[error("CPU threads: {0}")]
    Threads(String),
    /// Training diverged: the loss of a mini-batch became NaN or infinite. The model
    /// keeps the parameters of the last step whose loss was finite.
    #[error("training diverged at epoch {epoch}, step {step}: the loss is {loss}; the model keeps the parameters after step {kept_steps} of that epoch")]
    Diverged {
        /// The 1-based epoch.
        epoch: usize,
        /// The 1-based mini-batch of that epoch whose loss was not finite.
        step: usize,
        /// That loss (NaN or ±infinity).
        loss: f32,
        /// How many steps of the epoch the kept parameters have taken (the steps
        /// before `step`, fewer where those steps' updates were not finite).
        kept_steps: usize,
    },
    /// A checkpoint file could not be read, written or matched to the model.
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// A data file could not be read or does not hold what was asked of it.
    #[error("data file {path}: {detail}")]
    Data {
        /// The file.
        path: String,
        /// What went wrong, and where in the file (line or row, column).
        detail: String,
    },
    /// A tensor made by one backend (one GPU device) was given to another.
    #[error("{op}: a tensor of another device; tensors belong to the backend that made them (upload the data to this one)")]
    WrongDevice {
        /// The operation that was called.
        op: &'static str,
    },
    /// The GPU device was lost; the backend cannot be used any more.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
}

/// `Result` with minidl's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An [`Error::Data`] about the file at `path`.
    pub fn data(path: &std::path::Path, detail: impl Into<String>) -> Self {
        Error::Data {
            path: path.display().to_string(),
            detail: detail.into(),
        }
    }

    /// A [`Error::Shape`] for `context` with the given detail.
    pub fn shape(context: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Shape {
            context: context.into(),
            detail: detail.into(),
        }
    }
}

/// `Ok` when `value` is finite and at least 0 (and above 0 where `positive`), else an
/// [`Error::InvalidArgument`] naming `what`.
pub(crate) fn check_non_negative(what: &str, value: f32, positive: bool) -> Result<()> {
    if value.is_finite() && value >= 0.0 && (!positive || value > 0.0) {
        return Ok(());
    }
    let want = if positive { "positive" } else { "non-negative" };
    Err(Error::InvalidArgument(format!(
        "{what} must be a {want} finite number, got {value}"
    )))
}
