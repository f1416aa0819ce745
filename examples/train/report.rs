//! What a train run reports: the metrics of each part of the data, as text or as one
//! JSON line.

use minidl::metrics::Confusion;

use crate::args::Args;
use crate::cli::{json_number, json_string};

/// The metrics of the model on one part of the data.
pub enum Part {
    /// Classification: the confusion matrix (accuracy and per-class accuracy follow).
    Classes(Confusion),
    /// Regression: mean-squared error and R².
    Regression {
        /// Mean-squared error over every target value.
        mse: f64,
        /// R², averaged over the target columns.
        r2: f64,
    },
}

impl Part {
    /// The error in percent with its name, shown per epoch: the validation error
    /// (100 − accuracy) for classification, none for regression.
    pub fn error_percent(&self) -> Option<(&'static str, f64)> {
        match self {
            Part::Classes(c) => Some(("validation error", 100.0 * (1.0 - c.accuracy()))),
            Part::Regression { .. } => None,
        }
    }

    /// One line of its figures.
    fn text(&self) -> String {
        match self {
            Part::Classes(c) => format!(
                "accuracy {:.2} % ({} of {})",
                100.0 * c.accuracy(),
                (0..c.classes()).map(|k| c.count(k, k)).sum::<usize>(),
                c.total()
            ),
            Part::Regression { mse, r2 } => format!("MSE {mse:.6}, R² {r2:.4}"),
        }
    }

    /// Its figures as JSON members, each key prefixed with `prefix`.
    fn json(&self, prefix: &str, details: bool) -> Vec<String> {
        match self {
            Part::Classes(c) => {
                let mut members = vec![format!(
                    "\"{prefix}accuracy\":{}",
                    json_number(c.accuracy())
                )];
                if details {
                    let per_class: Vec<String> = c
                        .per_class_accuracy()
                        .iter()
                        .map(|a| a.map_or("null".into(), json_number))
                        .collect();
                    let rows: Vec<String> = c
                        .rows()
                        .iter()
                        .map(|r| {
                            let counts: Vec<String> = r.iter().map(usize::to_string).collect();
                            format!("[{}]", counts.join(","))
                        })
                        .collect();
                    members.push(format!(
                        "\"{prefix}per_class_accuracy\":[{}]",
                        per_class.join(",")
                    ));
                    members.push(format!("\"{prefix}confusion\":[{}]", rows.join(",")));
                }
                members
            }
            Part::Regression { mse, r2 } => vec![
                format!("\"{prefix}mse\":{}", json_number(*mse)),
                format!("\"{prefix}r2\":{}", json_number(*r2)),
            ],
        }
    }
}

/// What a run measured.
pub struct Summary {
    /// "cpu" or "gpu".
    pub backend: &'static str,
    /// The backend's adapter name.
    pub adapter: String,
    /// Rows in the training, validation and test parts.
    pub rows: [usize; 3],
    /// Each row's image shape (C, H, W): `--image`, or the data's own for a `--model`
    /// that takes images; `None` for flat rows.
    pub image: Option<(usize, usize, usize)>,
    /// The classes' names, where the data named them (an image folder's subfolders).
    pub class_names: Option<Vec<String>>,
    /// The metrics on the training rows.
    pub train: Part,
    /// The metrics on the validation rows, if there are any.
    pub validation: Option<Part>,
    /// The metrics on the test rows, if there are any.
    pub test: Option<Part>,
    /// The summed mini-batch losses of the last epoch.
    pub final_loss: f64,
    /// The median wall time of an epoch.
    pub epoch_ms_median: f64,
    /// Whether the epochs ran on the fully fused path.
    pub fused: bool,
}

impl Summary {
    /// The results as lines of text.
    pub fn text(&self) -> String {
        let mut lines = vec![format!("train      {}", self.train.text())];
        if let Some(v) = &self.validation {
            lines.push(format!("validation {}", v.text()));
        }
        if let Some(t) = &self.test {
            lines.push(format!("test       {}", t.text()));
            if let Part::Classes(c) = t {
                let per_class: Vec<String> = c
                    .per_class_accuracy()
                    .iter()
                    .enumerate()
                    .map(|(k, a)| match a {
                        Some(a) => format!("{k}: {:.1} %", 100.0 * a),
                        None => format!("{k}: -"),
                    })
                    .collect();
                lines.push(format!("test accuracy per class: {}", per_class.join(", ")));
            }
        }
        lines.join("\n")
    }

    /// The results as one JSON object.
    pub fn json(&self, args: &Args, total_s: f64) -> String {
        let hidden: Vec<String> = args.hidden.iter().map(usize::to_string).collect();
        let mut members = vec![
            format!("\"backend\":{}", json_string(self.backend)),
            format!("\"adapter\":{}", json_string(&self.adapter)),
            format!("\"data\":{}", json_string(&args.data.display().to_string())),
            match &args.model {
                // The network as a layer list, written back from what was parsed.
                Some(layers) => {
                    let list: Vec<String> = layers.iter().map(minidl::nn::describe).collect();
                    format!("\"model\":{}", json_string(&list.join(",")))
                }
                None => format!(
                    "\"hidden\":[{}],\"activation\":{}",
                    hidden.join(","),
                    json_string(args.activation.flag())
                ),
            },
            match self.image {
                Some((c, h, w)) => format!("\"image\":[{c},{h},{w}]"),
                None => "\"image\":null".into(),
            },
            match &self.class_names {
                Some(names) => {
                    let names: Vec<String> = names.iter().map(|n| json_string(n)).collect();
                    format!("\"class_names\":[{}]", names.join(","))
                }
                None => "\"class_names\":null".into(),
            },
            format!("\"loss\":{}", json_string(args.loss.flag())),
            format!(
                "\"optimizer\":{}",
                json_string(args.optimizer.choice.flag())
            ),
            format!("\"lr\":{}", args.optimizer.lr),
            format!("\"batch_size\":{}", args.batch_size),
            format!("\"epochs\":{}", args.epochs),
            format!("\"seed\":{}", args.seed),
            format!(
                "\"rows\":{{\"train\":{},\"validation\":{},\"test\":{}}}",
                self.rows[0], self.rows[1], self.rows[2]
            ),
            format!("\"final_loss\":{}", json_number(self.final_loss)),
            format!("\"epoch_ms_median\":{}", json_number(self.epoch_ms_median)),
            format!("\"fused\":{}", self.fused),
            format!("\"total_s\":{}", json_number(total_s)),
        ];
        members.extend(self.train.json("train_", false));
        if let Some(v) = &self.validation {
            members.extend(v.json("validation_", false));
        }
        if let Some(t) = &self.test {
            members.extend(t.json("test_", true));
        }
        format!("{{{}}}", members.join(","))
    }
}
