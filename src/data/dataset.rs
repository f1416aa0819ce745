//! [`Dataset`]: inputs with class labels (and their one-hot targets) or with regression
//! targets, and the image shape of each row where the file it came from knows one.

use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Inputs with their targets: class labels (with one-hot targets) for classification,
/// or rows of values for regression. Each row may also carry an image shape
/// ([`Dataset::image_shape`]), as the MNIST, IDX and CIFAR readers give it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    inputs: Tensor,
    labels: Vec<usize>,
    targets: Tensor,
    regression: bool,
    image: Option<(usize, usize, usize)>,
    class_names: Option<Vec<String>>,
}

impl Dataset {
    /// A data set of `inputs` (`[n, features]`) labelled with `labels` (`n` values below
    /// `classes`). Fails when it is empty, when the lengths differ, when a label is out
    /// of range, or when an input is not finite.
    pub fn new(inputs: Tensor, labels: Vec<usize>, classes: usize) -> Result<Self> {
        let n = rows_of(&inputs)?;
        if labels.len() != n {
            return Err(Error::shape(
                "Dataset",
                format!("{n} inputs but {} labels", labels.len()),
            ));
        }
        check_finite("Dataset", &inputs)?;
        let targets = one_hot(&labels, classes)?;
        Ok(Dataset {
            inputs,
            labels,
            targets,
            regression: false,
            image: None,
            class_names: None,
        })
    }

    /// A regression data set: `inputs` (`[n, features]`) with `targets` (`[n, k]`), both
    /// finite. Fails when it is empty, when the row counts differ, or on a value that is
    /// not finite.
    pub fn regression(inputs: Tensor, targets: Tensor) -> Result<Self> {
        let n = rows_of(&inputs)?;
        let [rows, _] = targets.shape()[..] else {
            return Err(Error::shape(
                "Dataset",
                format!("targets must be [n, k], got {:?}", targets.shape()),
            ));
        };
        if rows != n {
            return Err(Error::shape(
                "Dataset",
                format!("{n} inputs but {rows} rows of targets"),
            ));
        }
        check_finite("Dataset", &inputs)?;
        check_finite("Dataset targets", &targets)?;
        Ok(Dataset {
            inputs,
            labels: Vec::new(),
            targets,
            regression: true,
            image: None,
            class_names: None,
        })
    }

    /// The rows `rows` (indices, in that order, repeats allowed) as a data set of the
    /// same kind. Fails on an index out of range or an empty selection.
    pub fn select(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.len()) {
            return Err(Error::InvalidArgument(format!(
                "row {bad} is out of range: the data set has {} rows",
                self.len()
            )));
        }
        let inputs = gather(&self.inputs, rows)?;
        let selected = match self.regression {
            true => Self::regression(inputs, gather(&self.targets, rows)?)?,
            false => {
                let labels = rows.iter().map(|&r| self.labels[r]).collect();
                Self::new(inputs, labels, self.classes())?
            }
        };
        Ok(Dataset {
            image: self.image,
            class_names: self.class_names.clone(),
            ..selected
        })
    }

    /// The same targets with other inputs of as many rows (the inputs after a scaler,
    /// say). The image shape stays when the width does. Fails as [`Dataset::new`] does.
    pub fn with_inputs(&self, inputs: Tensor) -> Result<Self> {
        let replaced = match self.regression {
            true => Self::regression(inputs, self.targets.clone())?,
            false => Self::new(inputs, self.labels.clone(), self.classes())?,
        };
        let image = self
            .image
            .filter(|&(c, h, w)| c * h * w == replaced.features());
        Ok(Dataset {
            image,
            class_names: self.class_names.clone(),
            ..replaced
        })
    }

    /// The same data set with one-hot targets of `classes` classes (to give a test
    /// file the training data's class count, so that its reports cover every class).
    /// Fails for a regression data set and for a label not below `classes`.
    pub fn with_classes(self, classes: usize) -> Result<Self> {
        if self.regression {
            return Err(Error::InvalidArgument(
                "the data set holds regression targets, not class labels".into(),
            ));
        }
        let targets = one_hot(&self.labels, classes)?;
        let class_names = self.class_names.filter(|names| names.len() == classes);
        Ok(Dataset {
            targets,
            class_names,
            ..self
        })
    }

    /// The same data set with its classes named, `names[i]` for class `i` (an image
    /// folder's subfolders). Fails for a regression data set, and where the names are
    /// not one per class or one repeats.
    pub fn with_class_names(self, names: Vec<String>) -> Result<Self> {
        if self.regression || names.len() != self.classes() {
            return Err(Error::InvalidArgument(format!(
                "{} class names for a data set of {} classes",
                names.len(),
                self.classes()
            )));
        }
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(Error::InvalidArgument(format!(
                "the class name {:?} is given twice",
                pair[0]
            )));
        }
        Ok(Dataset {
            class_names: Some(names),
            ..self
        })
    }

    /// The name of each class, in class order, where the data told them (an image
    /// folder's subfolders); `None` otherwise.
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// The same rows relabelled onto the classes `names` (another data set's, to test
    /// on a folder that holds some of the training folder's classes): each class
    /// becomes the one of the same name among `names`, and the targets have
    /// `names.len()` classes. Fails for a data set without class names and, naming it,
    /// for a class that is not among `names`.
    pub fn with_classes_named(self, names: &[String]) -> Result<Self> {
        let Some(own) = &self.class_names else {
            return Err(Error::InvalidArgument(
                "the data set's classes have no names".into(),
            ));
        };
        let mut onto = Vec::with_capacity(own.len());
        for name in own {
            match names.iter().position(|n| n == name) {
                Some(i) => onto.push(i),
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "the class {name:?} is not among the {} classes {names:?}",
                        names.len()
                    )))
                }
            }
        }
        let labels: Vec<usize> = self.labels.iter().map(|&l| onto[l]).collect();
        let targets = one_hot(&labels, names.len())?;
        Ok(Dataset {
            labels,
            targets,
            class_names: Some(names.to_vec()),
            ..self
        })
    }

    /// The same data set with each row an image of `channels × height × width`
    /// pixels in (C, H, W) order. Fails when that is not the row's width.
    pub fn with_image_shape(
        self,
        (channels, height, width): (usize, usize, usize),
    ) -> Result<Self> {
        let values = channels
            .checked_mul(height)
            .and_then(|n| n.checked_mul(width));
        if values != Some(self.features()) {
            return Err(Error::shape(
                "Dataset",
                format!(
                    "images of {channels}×{height}×{width} do not make rows of {} values",
                    self.features()
                ),
            ));
        }
        Ok(Dataset {
            image: Some((channels, height, width)),
            ..self
        })
    }

    /// The (channels, height, width) of each row where it is an image whose shape the
    /// file told: (1, 28, 28) for MNIST, (3, 32, 32) for CIFAR, (1, H, W) for an IDX
    /// file of rank 3. `None` for tables and for data sets built from a tensor.
    pub fn image_shape(&self) -> Option<(usize, usize, usize)> {
        self.image
    }

    /// The inputs, `[n, features]`.
    pub fn inputs(&self) -> &Tensor {
        &self.inputs
    }

    /// The class of each point (empty for a regression data set).
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The targets: one-hot rows of [`Dataset::classes`] values for classification, the
    /// values for regression.
    pub fn targets(&self) -> &Tensor {
        &self.targets
    }

    /// The labels as an `n × 1` column of floats, the targets of a cross-entropy loss
    /// (exact: labels are far below 2²⁴). Fails for a regression data set.
    pub fn class_indices(&self) -> Result<Tensor> {
        if self.regression {
            return Err(Error::InvalidArgument(
                "the data set holds regression targets, not class labels".into(),
            ));
        }
        let column = self.labels.iter().map(|&l| l as f32).collect();
        Tensor::new(&[self.labels.len(), 1], column)
    }

    /// The number of points.
    pub fn len(&self) -> usize {
        self.inputs.shape()[0]
    }

    /// Whether there are no points (never true for a constructed data set).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of features per point.
    pub fn features(&self) -> usize {
        self.inputs.shape()[1]
    }

    /// The number of classes (0 for a regression data set).
    pub fn classes(&self) -> usize {
        match self.regression {
            true => 0,
            false => self.targets.shape()[1],
        }
    }

    /// Whether the targets are regression values rather than class labels.
    pub fn is_regression(&self) -> bool {
        self.regression
    }
}

/// The row count of a non-empty `[n, features]` input matrix.
fn rows_of(inputs: &Tensor) -> Result<usize> {
    let [n, _] = inputs.shape()[..] else {
        return Err(Error::shape(
            "Dataset",
            format!("inputs must be [n, features], got {:?}", inputs.shape()),
        ));
    };
    if n == 0 {
        return Err(Error::InvalidArgument("the data set is empty".into()));
    }
    Ok(n)
}

/// The rows `rows` of the matrix `t`, in that order, as a matrix.
fn gather(t: &Tensor, rows: &[usize]) -> Result<Tensor> {
    Tensor::new(&[rows.len(), t.shape()[1]], t.gather_rows(rows)?)
}

/// `Ok` when every value of the matrix `inputs` is finite, else an
/// [`Error::InvalidArgument`] naming `what`, the first bad value and its row and column.
pub fn check_finite(what: &str, inputs: &Tensor) -> Result<()> {
    let Some(i) = inputs.data().iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let cols = inputs.shape().last().copied().unwrap_or(1).max(1);
    Err(Error::InvalidArgument(format!(
        "{what}: input row {}, column {} is {}",
        i / cols,
        i % cols,
        inputs.data()[i]
    )))
}

/// `v` as a class index: a whole number from 0 below 2²⁴ (where `f32` still holds every
/// whole number), or `None`.
pub(super) fn class_index(v: f64) -> Option<usize> {
    let whole = v >= 0.0 && v.fract() == 0.0 && v < (1 << 24) as f64;
    whole.then_some(v as usize)
}

/// The most values one-hot targets may hold: 2³⁰ (4 GiB of `f32`). A label file of a
/// few bytes can name a class in the millions; refusing it beats failing to allocate.
const MAX_ONE_HOT: usize = 1 << 30;

/// `labels` as rows of `classes` values, 1 at the label and 0 elsewhere. Fails on a
/// label not below `classes`, and when the rows hold over 2³⁰ values.
pub fn one_hot(labels: &[usize], classes: usize) -> Result<Tensor> {
    if labels
        .len()
        .checked_mul(classes)
        .is_none_or(|n| n > MAX_ONE_HOT)
    {
        return Err(Error::InvalidArgument(format!(
            "{} labels of {classes} classes make one-hot targets of over 2^30 values",
            labels.len()
        )));
    }
    let mut t = Tensor::zeros(&[labels.len(), classes]);
    for (i, &l) in labels.iter().enumerate() {
        if l >= classes {
            return Err(Error::InvalidArgument(format!(
                "label {l} of point {i} is not below {classes} classes"
            )));
        }
        t.data_mut()[i * classes + l] = 1.0;
    }
    Ok(t)
}
