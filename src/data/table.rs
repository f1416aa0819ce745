//! [`Table`]: the numbers of a data file, row by row, with column names where the file
//! has them, and how its columns become a [`Dataset`] ([`Target`]).

use std::path::{Path, PathBuf};

use super::{read_csv, read_npy, read_safetensors, CsvOptions, Dataset, Header};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// A column of a table: by its header name, by its 0-based index, or the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// The column at this 0-based index.
    Index(usize),
    /// The column with this header name.
    Name(String),
    /// The last column.
    Last,
}

impl From<&str> for Column {
    /// `last`, a 0-based index, or else a header name.
    fn from(s: &str) -> Self {
        match (s, s.parse::<usize>()) {
            ("last", _) => Column::Last,
            (_, Ok(i)) => Column::Index(i),
            _ => Column::Name(s.to_string()),
        }
    }
}

/// Which columns of a table are the targets; every other column is an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Classification: this column holds class indices 0, 1, 2, … (whole numbers; the
    /// class count is the largest label + 1).
    Label(Column),
    /// Regression: these columns hold the values to predict.
    Values(Vec<Column>),
}

/// How [`load`] reads a file and which of its columns are targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Whether a CSV file starts with a header line (ignored for other formats).
    pub header: Header,
    /// Which columns are targets.
    pub target: Target,
}

impl Default for LoadOptions {
    /// A header when the first line is not all numbers; the last column is the label.
    fn default() -> Self {
        LoadOptions {
            header: Header::Auto,
            target: Target::Label(Column::Last),
        }
    }
}

/// The numbers of a data file: `rows × cols` values, row after row, with the columns'
/// names where the file has them. Every value is finite (the readers check it).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file the table was read from, for messages.
    pub source: PathBuf,
    /// The columns' names (a CSV header), if the file has them.
    pub names: Option<Vec<String>>,
    /// The number of rows.
    pub rows: usize,
    /// The number of columns.
    pub cols: usize,
    /// The values, row-major.
    pub values: Vec<f64>,
    /// The 1-based line of each row in a text file (CSV), for messages; `None` where
    /// rows are named by their 0-based index.
    pub lines: Option<Vec<usize>>,
}

/// The name of column `c` in messages: its header name and index, or its index.
pub(super) fn column_label(names: Option<&[String]>, c: usize) -> String {
    match names {
        Some(names) => format!("column {c} ({:?})", names[c]),
        None => format!("column {c}"),
    }
}

impl Table {
    fn error(&self, detail: impl Into<String>) -> Error {
        Error::data(&self.source, detail)
    }

    /// The name of column `c` in messages: its header name and index, or its index.
    pub fn column_name(&self, c: usize) -> String {
        column_label(self.names.as_deref(), c)
    }

    /// The name of row `r` in messages: its line in a text file, else its index.
    pub fn row_name(&self, r: usize) -> String {
        match &self.lines {
            Some(lines) => format!("line {}", lines[r]),
            None => format!("row {r}"),
        }
    }

    /// The index of `column`, or an error naming what the table has.
    pub fn index(&self, column: &Column) -> Result<usize> {
        match column {
            Column::Last => Ok(self.cols - 1),
            Column::Index(i) if *i < self.cols => Ok(*i),
            Column::Index(i) => Err(self.error(format!(
                "column index {i} is out of range: the file has {} columns",
                self.cols
            ))),
            Column::Name(name) => match &self.names {
                Some(names) => names.iter().position(|n| n == name).ok_or_else(|| {
                    self.error(format!(
                        "no column named {name:?}; the columns are {}",
                        names.join(", ")
                    ))
                }),
                None => Err(self.error(format!(
                    "the file has no column names, so {name:?} names no column (give a 0-based index)"
                ))),
            },
        }
    }

    /// The table as a data set: the `target` columns as labels or regression values,
    /// every other column as an input. Fails, naming the row and column, on a label
    /// that is not a whole number from 0 to 2²⁴, and when no input column is left.
    pub fn dataset(&self, target: &Target) -> Result<Dataset> {
        let targets = match target {
            Target::Label(c) => vec![self.index(c)?],
            Target::Values(cs) if cs.is_empty() => {
                return Err(self.error("no target columns were named"))
            }
            Target::Values(cs) => cs.iter().map(|c| self.index(c)).collect::<Result<_>>()?,
        };
        let inputs: Vec<usize> = (0..self.cols).filter(|c| !targets.contains(c)).collect();
        if inputs.is_empty() {
            return Err(self.error("every column is a target: no input column is left"));
        }
        let at = |r: usize, c: usize| self.values[r * self.cols + c];
        let x: Vec<f32> = (0..self.rows)
            .flat_map(|r| inputs.iter().map(move |&c| at(r, c) as f32))
            .collect();
        let x = Tensor::new(&[self.rows, inputs.len()], x)?;
        if let Target::Values(_) = target {
            let y = (0..self.rows)
                .flat_map(|r| targets.iter().map(move |&c| at(r, c) as f32))
                .collect();
            return Dataset::regression(x, Tensor::new(&[self.rows, targets.len()], y)?);
        }
        let c = targets[0];
        let mut labels = Vec::with_capacity(self.rows);
        for r in 0..self.rows {
            let v = at(r, c);
            let Some(label) = super::dataset::class_index(v) else {
                return Err(self.error(format!(
                    "{}, {}: the label {v} is not a class index (a whole number from 0)",
                    self.row_name(r),
                    self.column_name(c)
                )));
            };
            labels.push(label);
        }
        let classes = labels.iter().max().map_or(0, |&m| m + 1);
        Dataset::new(x, labels, classes)
    }
}

/// Reads the data file at `path` and makes a data set of it as `options` say. The
/// format follows the name: `.csv` or `.csv.gz` ([`read_csv`]), `.npy` ([`read_npy`]),
/// `.safetensors` ([`read_safetensors`]); `.bin.gz`, and `.bin` starting as that file
/// does, MNIST digits in the shipped format ([`read_mnist`](super::read_mnist)); any
/// other `.bin`, a binary CIFAR-10 or CIFAR-100 file; a folder with subfolders and no
/// `data_batch_N.bin` file, its PNG and JPEG images by class
/// ([`read_image_folder`](super::read_image_folder)), and any other folder, its CIFAR-10
/// training batches ([`read_cifar`](super::read_cifar)); a name ending in `idxN-ubyte`
/// (and `.gz` or not), an IDX inputs file read with the labels file beside it
/// ([`read_idx_beside`](super::read_idx_beside), as `train-images-idx3-ubyte.gz` with
/// `train-labels-idx1-ubyte.gz`). For all but the tables the labels are the classes and
/// `options` do not apply.
pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Dataset> {
    let path = path.as_ref();
    let name = path.to_string_lossy().to_lowercase();
    let table = if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        read_csv(
            path,
            &CsvOptions {
                header: options.header,
            },
        )?
    } else if name.ends_with(".npy") {
        read_npy(path)?
    } else if name.ends_with(".safetensors") {
        read_safetensors(path)?
    } else if path.is_dir() {
        return match super::is_image_folder(path) && !super::file_cifar::has_training_batches(path)
        {
            true => super::read_image_folder(path),
            false => super::read_cifar(path),
        };
    } else if name.ends_with(".bin.gz") {
        return super::read_mnist(path);
    } else if name.ends_with(".bin") {
        let bytes = super::compressed::read_bytes(path)?;
        return match bytes.starts_with(b"MNISTu8") || super::compressed::is_gzip(&bytes) {
            true => super::parse_mnist(&bytes, path),
            false => super::parse_cifar(&bytes, path),
        };
    } else if super::is_idx_name(path) {
        return super::read_idx_beside(path);
    } else {
        return Err(Error::data(
            path,
            "unknown format: the name should end in .csv, .csv.gz, .npy, .safetensors, .bin.gz (MNIST digits), .bin (MNIST digits or CIFAR), or idx3-ubyte or idx3-ubyte.gz (IDX images, their labels beside them), or be a folder of class subfolders of PNG or JPEG images or of CIFAR-10 batches",
        ));
    };
    table.dataset(&options.target)
}
