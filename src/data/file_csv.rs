//! CSV files (optionally gzip-compressed) read into a [`Table`], with errors that name
//! the line and column of the first bad value.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;

use super::table::column_label;
use super::Table;
use crate::error::{Error, Result};

/// Whether a CSV file's first line is a header of column names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Header {
    /// A header when some non-empty field of the first line is not a number.
    #[default]
    Auto,
    /// The first line is a header.
    Yes,
    /// Every line is data.
    No,
}

/// How [`read_csv`] reads a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CsvOptions {
    /// Whether the first line is a header.
    pub header: Header,
}

/// Reads a comma-separated file of numbers (gzip-compressed when its name ends in
/// `.gz`): an optional header line, then rows of equally many fields, each a finite
/// number (spaces around a field are ignored). Fails, naming the line and column, on
/// a ragged row, an empty field, a field that is not a number, NaN or an infinity;
/// and on a file with no data rows.
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Table> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::data(path, format!("cannot open: {e}")))?;
    let mut reader: Box<dyn Read> = match path.extension().is_some_and(|e| e == "gz") {
        true => Box::new(GzDecoder::new(BufReader::new(file))),
        false => Box::new(BufReader::new(file)),
    };
    // The whole text, so that a record's line can be counted from its byte offset.
    let mut text = Vec::new();
    reader
        .read_to_end(&mut text)
        .map_err(|e| Error::data(path, format!("reading failed: {e}")))?;
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_slice());
    let mut counter = LineCounter {
        text: &text,
        offset: 0,
        line: 1,
    };
    let mut names: Option<Vec<String>> = None;
    let mut values = Vec::new();
    let mut cols = 0;
    // The line of each data row.
    let mut lines = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(Error::data(path, format!("reading failed: {e}"))),
        }
        let line = counter.line_at(record.position().map_or(0, |p| p.byte() as usize));
        if lines.is_empty() && names.is_none() {
            // An empty field is a missing number, not a name.
            let all_numbers = record
                .iter()
                .all(|f| f.is_empty() || f.parse::<f64>().is_ok());
            let header = match options.header {
                Header::Yes => true,
                Header::No => false,
                Header::Auto => !all_numbers,
            };
            cols = record.len();
            if header {
                names = Some(record.iter().map(str::to_string).collect());
                continue;
            }
        }
        if record.len() != cols {
            return Err(Error::data(
                path,
                format!(
                    "line {line} has {} fields, expected {cols} as on the first line",
                    record.len()
                ),
            ));
        }
        for (c, field) in record.iter().enumerate() {
            values.push(parse_field(field).map_err(|what| {
                let column = column_label(names.as_deref(), c);
                Error::data(path, format!("line {line}, {column}: {what}"))
            })?);
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(Error::data(
            path,
            match names {
                Some(_) => "the file has a header but no data rows",
                None => "the file is empty",
            },
        ));
    }
    Ok(Table {
        source: path.to_path_buf(),
        names,
        rows: lines.len(),
        cols,
        values,
        lines: Some(lines),
    })
}

/// A field as a finite number, or what is wrong with it.
fn parse_field(field: &str) -> std::result::Result<f64, String> {
    if field.is_empty() {
        return Err("the field is empty, expected a number".into());
    }
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(v) => Err(format!("{v} is not a finite number")),
        Err(_) => Err(format!("{field:?} is not a number")),
    }
}

/// The 1-based line of each record, from the byte offset where the CSV reader began
/// it; the reader skips blank lines without counting them in its own line numbers.
struct LineCounter<'a> {
    text: &'a [u8],
    /// Where the last count stopped, and the line there.
    offset: usize,
    line: usize,
}

impl LineCounter<'_> {
    /// The line of the first byte at or after `offset` (which never decreases from call
    /// to call) that is not a line break: where the record starting there really begins.
    fn line_at(&mut self, offset: usize) -> usize {
        let offset = offset.clamp(self.offset, self.text.len());
        let start = offset
            + self.text[offset..]
                .iter()
                .take_while(|&&b| b == b'\n' || b == b'\r')
                .count();
        self.line += self.text[self.offset..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = start;
        self.line
    }
}
