//! How the examples report each epoch: a progress bar on a terminal, plain lines when
//! stdout is not one, and nothing with `--json`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One epoch's figures, as shown.
pub struct EpochLine {
    /// 1-based epoch number.
    pub epoch: usize,
    /// The epoch's summed training loss.
    pub loss: f64,
    /// Wall time of the epoch.
    pub millis: f64,
    /// Device time of the epoch, where the adapter has timestamps.
    pub gpu_millis: Option<f64>,
    /// The error metric after the epoch, in percent, and its name ("test error",
    /// "validation error"), where it was measured.
    pub error: Option<(&'static str, f64)>,
}

/// Where the epoch lines go.
pub enum Progress {
    /// An indicatif bar on stdout: epoch, loss, test error and epochs per second.
    Bar(ProgressBar),
    /// One line per epoch on stdout.
    Lines { epochs: usize },
    /// Nothing (`--json`).
    Silent,
}

impl Progress {
    /// A bar when stdout is a terminal and not `quiet`, else lines, or nothing when
    /// `quiet`.
    pub fn new(epochs: usize, quiet: bool) -> Self {
        if quiet {
            return Progress::Silent;
        }
        if !std::io::stdout().is_terminal() {
            return Progress::Lines { epochs };
        }
        let style = ProgressStyle::with_template(
            "epoch {pos:>4}/{len} [{bar:30.cyan/blue}] {msg} {per_sec:.green} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stdout());
        Progress::Bar(bar.with_style(style))
    }

    /// Shows one finished epoch.
    pub fn epoch(&self, line: &EpochLine) {
        let errors = line
            .error
            .map_or(String::new(), |(name, e)| format!("  {name} {e:5.2} %"));
        match self {
            Progress::Bar(bar) => {
                bar.set_message(format!("loss {:10.4}{errors}", line.loss));
                bar.set_position(line.epoch as u64);
            }
            Progress::Lines { epochs } => {
                let gpu = line
                    .gpu_millis
                    .map_or(String::new(), |g| format!("  (device {g:8.2} ms)"));
                println!(
                    "epoch {:4}/{epochs}  loss {:10.4}{errors}  {:8.2} ms{gpu}",
                    line.epoch, line.loss, line.millis
                );
            }
            Progress::Silent => {}
        }
    }

    /// Prints a line of results (nothing when silent), below the bar if there is one.
    pub fn say(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.println(text),
            Progress::Lines { .. } => println!("{text}"),
            Progress::Silent => {}
        }
    }

    /// Ends the bar, leaving its last state on screen.
    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}
