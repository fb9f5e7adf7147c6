//! CSV reading (streaming, via the `csv` crate) and writing ([`write_csv`]).
//!
//! Reading details: the first non-blank line is the header; blank lines (empty or only
//! whitespace) are skipped, so in a file with a single column an empty id is skipped;
//! fields may be quoted (RFC 4180) and surrounding ASCII whitespace is trimmed from every
//! field and header name (quotes do not protect it); line ends may be `\n` or `\r\n`; a leading UTF-8 byte-order mark is
//! ignored. Records whose field count differs from the header's are rejected as
//! [`DataError::RaggedRow`]. Numbers are parsed with Rust's `f64` parser (so `1e-3` and
//! `+2` are accepted); `NaN` counts as missing, and infinite values (`inf`, `1e400`, a
//! number with more digits than `f64` holds) are refused as [`DataError::NonFinite`].
//! Ids are kept verbatim; only an empty id counts as missing.
//!
//! A file whose name ends in `.gz` (e.g. `data.csv.gz`) is gzip-compressed: it is
//! decompressed on the fly while reading (concatenated gzip members too), and
//! [`write_csv`] compresses it. Line numbers in errors are those of the decompressed
//! text; damaged compressed data is a [`DataError::Io`] naming the file.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::batch::{Batch, Col, Common, Fill, select_columns};
use crate::dataset::Dataset;
use crate::error::{ColumnRole, DataError, Location, Result, truncate_text};
use crate::spec::{DatasetSpec, is_gzip, is_missing_text};

/// The bytes of a CSV file: as stored, or gunzipped.
enum Input {
    Plain(File),
    /// Boxed: the decoder's state is large, and allocated once per file anyway.
    Gzip(Box<MultiGzDecoder<BufReader<File>>>),
}

impl Input {
    fn open(path: &Path) -> Result<Input> {
        let file = File::open(path).map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(if is_gzip(path) {
            Input::Gzip(Box::new(MultiGzDecoder::new(BufReader::new(file))))
        } else {
            Input::Plain(file)
        })
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::Plain(f) => f.read(buf),
            Input::Gzip(d) => d
                .read(buf)
                .map_err(|e| io::Error::new(e.kind(), format!("gzip data: {e}"))),
        }
    }
}

/// Where [`write_csv`] writes: the file, or a gzip stream into it.
enum Output {
    Plain(File),
    Gzip(GzEncoder<File>),
}

impl Output {
    /// Flushes what is still buffered, and the gzip trailer.
    fn finish(self) -> io::Result<()> {
        match self {
            Output::Plain(mut f) => f.flush(),
            Output::Gzip(e) => e.finish().and_then(|mut f| f.flush()),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Plain(f) => f.write(buf),
            Output::Gzip(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Plain(f) => f.flush(),
            Output::Gzip(e) => e.flush(),
        }
    }
}

/// Streaming CSV source.
pub(crate) struct CsvSource {
    reader: csv::Reader<Input>,
    header: Vec<String>,
    record: csv::StringRecord,
    /// Data rows read so far (the ids under `row_ids`).
    rows_seen: usize,
}

/// Result of parsing one numeric cell.
enum Cell {
    Value(f64),
    Missing,
    NotNumeric,
    NonFinite,
}

#[inline]
fn parse_cell(text: &str) -> Cell {
    match text.parse::<f64>() {
        Ok(v) if v.is_nan() => Cell::Missing,
        Ok(v) if v.is_infinite() => Cell::NonFinite,
        Ok(v) => Cell::Value(v),
        Err(_) if is_missing_text(text) => Cell::Missing,
        Err(_) => Cell::NotNumeric,
    }
}

fn map_csv_error(path: &Path, header: Option<&[String]>, err: csv::Error) -> DataError {
    let position = err.position().map(|p| Location::Line(p.line()));
    let message = err.to_string();
    match err.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        csv::ErrorKind::Utf8 { pos, err } => {
            let at = pos
                .map(|p| Location::Line(p.line()))
                .or(position)
                .unwrap_or(Location::Line(1));
            DataError::InvalidUtf8 {
                path: path.to_path_buf(),
                at,
                column: Some(err.field() + 1),
                column_name: header.and_then(|h| h.get(err.field()).cloned()),
            }
        }
        _ => DataError::Csv {
            path: path.to_path_buf(),
            at: position,
            message,
        },
    }
}

impl CsvSource {
    /// Opens the file and resolves the header.
    pub fn open(spec: &DatasetSpec, fill: Fill, check_ids: bool) -> Result<(CsvSource, Common)> {
        let path = spec.path.clone();
        let file = Input::open(&path)?;
        // Records end at `\n` only: a `\r` before it is whitespace and trimmed with the
        // last field. (csv's own CRLF handling reports line numbers one too low,
        // BurntSushi/rust-csv#395.) Fields are trimmed here rather than with
        // `csv::Trim`, which allocates a new record per row.
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(spec.resolved_delimiter()?)
            .terminator(csv::Terminator::Any(b'\n'))
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(file);
        let mut record = csv::StringRecord::new();
        let header: Vec<String> = loop {
            let more = reader
                .read_record(&mut record)
                .map_err(|e| map_csv_error(&path, None, e))?;
            if !more {
                return Err(DataError::EmptyFile { path });
            }
            if !is_blank(&record) {
                break record.iter().map(|f| f.trim_ascii().to_owned()).collect();
            }
        };
        let selection = select_columns(&path, &header, spec)?;
        let common = Common::new(path, selection, fill, check_ids);
        Ok((
            CsvSource {
                reader,
                header,
                record,
                rows_seen: 0,
            },
            common,
        ))
    }

    /// Reads up to `max_rows` records.
    pub fn next_batch(&mut self, common: &mut Common, max_rows: usize) -> Result<Option<Batch>> {
        let n_features = common.selection.features.len();
        let mut ids = Vec::new();
        let mut labels = common.selection.label.as_ref().map(|_| Vec::new());
        let mut features = Vec::new();
        let mut categorical = Vec::new();
        let expected = self.header.len();
        while ids.len() < max_rows {
            let more = self
                .reader
                .read_record(&mut self.record)
                .map_err(|e| map_csv_error(&common.path, Some(&self.header), e))?;
            if !more {
                break;
            }
            let rec = &self.record;
            if is_blank(rec) {
                continue;
            }
            let at = Location::Line(rec.position().map_or(0, |p| p.line()));
            if rec.len() != expected {
                return Err(DataError::RaggedRow {
                    path: common.path.clone(),
                    at,
                    expected,
                    found: rec.len(),
                });
            }
            let sel = &common.selection;
            let row_id;
            let id = if sel.row_ids {
                row_id = self.rows_seen.to_string();
                row_id.as_str()
            } else {
                rec.get(sel.id.index).unwrap_or_default().trim_ascii()
            };
            if id.is_empty() {
                return Err(common.missing(&sel.id, ColumnRole::Id, at));
            }
            if let (Some(col), Some(labels)) = (&sel.label, labels.as_mut()) {
                let text = rec.get(col.index).unwrap_or_default().trim_ascii();
                match parse_cell(text) {
                    Cell::Value(v) => labels.push(v),
                    Cell::Missing => return Err(common.missing(col, ColumnRole::Label, at)),
                    Cell::NotNumeric => return Err(not_numeric(&common.path, at, col, text)),
                    Cell::NonFinite => return Err(common.non_finite(col, at, text)),
                }
            }
            for (j, col) in sel.features.iter().enumerate() {
                let text = rec.get(col.index).unwrap_or_default().trim_ascii();
                let v = match parse_cell(text) {
                    Cell::Value(v) => v,
                    Cell::Missing => common.missing_feature(j, at)?,
                    Cell::NotNumeric => return Err(not_numeric(&common.path, at, col, text)),
                    Cell::NonFinite => return Err(common.non_finite(col, at, text)),
                };
                features.push(v);
            }
            for col in &sel.categorical {
                let text = rec.get(col.index).unwrap_or_default().trim_ascii();
                categorical.push(if is_missing_text(text) {
                    String::new()
                } else {
                    text.to_owned()
                });
            }
            let id = id.to_owned();
            common.check_id(&id, at)?;
            ids.push(id);
            self.rows_seen += 1;
        }
        if ids.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch {
            ids,
            labels,
            features,
            n_features,
            categorical,
            first_row_index: 0,
        }))
    }
}

/// A blank line: one field holding only whitespace (e.g. the `\r` of an empty CRLF line).
/// Truly empty lines are skipped by the `csv` crate itself.
fn is_blank(rec: &csv::StringRecord) -> bool {
    rec.len() == 1 && rec.get(0).is_some_and(|f| f.trim_ascii().is_empty())
}

fn not_numeric(path: &Path, at: Location, col: &Col, text: &str) -> DataError {
    DataError::NotNumeric {
        path: path.to_path_buf(),
        at,
        column: col.number(),
        column_name: col.name.clone(),
        text: truncate_text(text),
    }
}

/// Formats `v` so that parsing the text gives back exactly `v`: integral values below
/// 1e15 in magnitude without a fraction (`3`, `-1`), everything else with Rust's shortest
/// round-trip representation (`0.1`, `1e-7`, `1e300`, `inf`, `NaN`).
pub(crate) fn format_f64(buf: &mut String, v: f64) {
    buf.clear();
    // Writing to a String cannot fail.
    let _ = if v.fract() == 0.0 && v.abs() < 1e15 {
        write!(buf, "{v}")
    } else {
        write!(buf, "{v:?}")
    };
}

/// Writes `dataset` as comma-separated CSV: a header
/// `id_column[,label],features…[,categorical…]`, then
/// one line per row. Floats are written so that reading the file back yields exactly the
/// same values (NaN is written as `NaN` and so reads back as missing). Ids and names are
/// quoted when needed. A path ending in `.gz` is written gzip-compressed. An existing
/// file is overwritten.
pub fn write_csv(path: impl AsRef<Path>, dataset: &Dataset) -> Result<()> {
    let path = path.as_ref();
    let io_err = |e: csv::Error| map_csv_error(path, None, e);
    let to_data_err = |source: io::Error| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::create(path).map_err(to_data_err)?;
    let out = if is_gzip(path) {
        Output::Gzip(GzEncoder::new(file, flate2::Compression::default()))
    } else {
        Output::Plain(file)
    };
    let mut w = csv::WriterBuilder::new().from_writer(out);
    let mut header: Vec<&str> = vec![dataset.id_column()];
    if let Some(l) = dataset.label_name() {
        header.push(l);
    }
    header.extend(dataset.feature_names().iter().map(String::as_str));
    header.extend(dataset.categorical_names().iter().map(String::as_str));
    w.write_record(&header).map_err(io_err)?;
    let mut buf = String::with_capacity(32);
    for i in 0..dataset.n_rows() {
        w.write_field(&dataset.ids()[i]).map_err(io_err)?;
        if let Some(labels) = dataset.labels() {
            format_f64(&mut buf, labels[i]);
            w.write_field(&buf).map_err(io_err)?;
        }
        for &v in dataset.row(i) {
            format_f64(&mut buf, v);
            w.write_field(&buf).map_err(io_err)?;
        }
        for c in dataset.categorical_row(i) {
            w.write_field(c).map_err(io_err)?;
        }
        w.write_record(None::<&[u8]>).map_err(io_err)?;
    }
    w.into_inner()
        .map_err(|e| to_data_err(e.into_error()))?
        .finish()
        .map_err(to_data_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_round_trips() {
        let mut buf = String::new();
        for v in [
            0.0,
            -0.0,
            1.0,
            -3.0,
            0.1,
            1.0 / 3.0,
            1e-7,
            1e300,
            -2.5e-308,
            f64::MIN_POSITIVE,
            f64::MAX,
            5e-324,
            123456789012345.0,
            1e15,
            f64::INFINITY,
        ] {
            format_f64(&mut buf, v);
            let back: f64 = buf.parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v} -> {buf}");
        }
        format_f64(&mut buf, 1.0);
        assert_eq!(buf, "1");
        format_f64(&mut buf, 0.25);
        assert_eq!(buf, "0.25");
        format_f64(&mut buf, 1e300);
        assert_eq!(buf, "1e300");
    }

    #[test]
    fn format_round_trips_random_bit_patterns() {
        // xorshift64*: deterministic, no dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut buf = String::new();
        for _ in 0..20_000 {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let v = f64::from_bits(state.wrapping_mul(0x2545_F491_4F6C_DD1D));
            if v.is_nan() {
                continue;
            }
            format_f64(&mut buf, v);
            let back: f64 = buf.parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v:?} -> {buf}");
        }
    }

    #[test]
    fn cells() {
        assert!(matches!(parse_cell("1.5"), Cell::Value(v) if v == 1.5));
        assert!(matches!(parse_cell("-NaN"), Cell::Missing));
        assert!(matches!(parse_cell("NA"), Cell::Missing));
        assert!(matches!(parse_cell(""), Cell::Missing));
        assert!(matches!(parse_cell("abc"), Cell::NotNumeric));
    }
}
