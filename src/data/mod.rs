//! Data: labelled data sets ([`Dataset`]), the seed's disc task, tables read from
//! CSV, NPY and safetensors files, MNIST digits (10 000 ship in `datasets/mnist/`),
//! IDX files (LeCun's original MNIST files, Fashion-MNIST, EMNIST), CIFAR-10 and
//! CIFAR-100 in their binary version, folders of PNG and JPEG images by class, a seeded
//! train/validation/test split, a standardizing scaler, and mini-batch ranges.

mod compressed;
mod dataset;
mod disc;
mod file_cifar;
mod file_csv;
mod file_idx;
mod file_image_folder;
mod file_jpeg;
mod file_mnist;
mod file_npy;
mod file_png;
mod file_safetensors;
mod scaler;
mod split;
mod table;

pub use dataset::{check_finite, one_hot, Dataset};
pub use disc::{disc, disc_train_test, DISC_POINTS, DISC_RADIUS};
pub use file_cifar::{cifar_kind, parse_cifar, read_cifar, CifarKind, CIFAR_SIDE};
pub use file_csv::{read_csv, CsvOptions, Header};
pub use file_idx::{
    idx_dataset, idx_labels_path, is_idx_name, parse_idx, read_idx, read_idx_beside, read_idx_pair,
    IdxArray, IdxType,
};
pub use file_image_folder::{is_image_folder, parse_image, read_image_folder};
pub use file_jpeg::parse_jpeg;
pub use file_mnist::{mnist_path, parse_mnist, read_mnist, MNIST_MAGIC, MNIST_SIDE};
pub use file_npy::read_npy;
pub use file_png::{parse_png, ImageShape};
pub use file_safetensors::read_safetensors;
pub use scaler::Standardizer;
pub use split::{split, Split, SplitFractions};
pub use table::{load, Column, LoadOptions, Table, Target};

use std::ops::Range;

use crate::error::{Error, Result};

/// The row ranges of consecutive mini-batches of `batch_size` over `len` rows (the
/// last one may be shorter). Fails for a batch size of 0.
pub fn batches(len: usize, batch_size: usize) -> Result<impl Iterator<Item = Range<usize>>> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument(
            "batch size must be at least 1".into(),
        ));
    }
    Ok((0..len)
        .step_by(batch_size)
        .map(move |s| s..(s + batch_size).min(len)))
}
