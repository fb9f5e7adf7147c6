//! Parquet reading (streaming, via arrow-rs' `ParquetRecordBatchReader`) and writing
//! ([`write_parquet`]).
//!
//! Supported column types: ids may be strings (`Utf8`, `LargeUtf8`, `Utf8View`) or
//! integers (signed or unsigned, any width; turned into their decimal text); labels and
//! features may be integers, `Float32`, `Float64` or `Boolean` (`true` = 1, `false` = 0).
//! Any other type in a selected column is rejected up front with
//! [`DataError::UnsupportedColumnType`]. Only the selected columns are decoded. Nulls and
//! float NaNs are missing values; a null or empty-string id is an error. Row-level errors give the 0-based row index in the file
//! and its row group ([`Location::Row`]).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, RecordBatchReader, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::batch::{Batch, Col, Common, Fill, select_columns};
use crate::dataset::Dataset;
use crate::error::{ColumnRole, DataError, Location, Result};
use crate::spec::DatasetSpec;

/// Streaming Parquet source.
pub(crate) struct ParquetSource {
    reader: ParquetRecordBatchReader,
    /// Positions of the id, label and feature columns in the projected batches.
    id_pos: usize,
    label_pos: Option<usize>,
    feature_pos: Vec<usize>,
    /// First row index of each row group.
    row_group_starts: Vec<u64>,
    next_row: u64,
}

fn parquet_err(
    path: &Path,
    context: Option<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> DataError {
    DataError::Parquet {
        path: path.to_path_buf(),
        context,
        source: Box::new(source),
    }
}

fn is_id_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

fn is_numeric_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
    )
}

/// Calls `f(i, value)` for each element of a numeric array; `None` for nulls.
fn for_each_f64(
    array: &ArrayRef,
    mut f: impl FnMut(usize, Option<f64>) -> Result<()>,
) -> Result<()> {
    macro_rules! prim {
        ($t:ty) => {{
            for (i, v) in array.as_primitive::<$t>().iter().enumerate() {
                f(i, v.map(|x| x as f64))?;
            }
        }};
    }
    match array.data_type() {
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::Boolean => {
            for (i, v) in array.as_boolean().iter().enumerate() {
                f(i, v.map(|b| if b { 1.0 } else { 0.0 }))?;
            }
        }
        // Types are checked when the file is opened.
        _ => {}
    }
    Ok(())
}

/// The ids of an id column; `None` for nulls.
fn id_values(array: &ArrayRef) -> Vec<Option<String>> {
    macro_rules! ints {
        ($t:ty) => {
            array
                .as_primitive::<$t>()
                .iter()
                .map(|v| v.map(|x| x.to_string()))
                .collect()
        };
    }
    match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect(),
        DataType::Utf8View => array
            .as_string_view()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect(),
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        // Types are checked when the file is opened.
        _ => vec![None; array.len()],
    }
}

impl ParquetSource {
    /// Opens the file, checks the schema and sets up a projected, batched reader.
    pub fn open(
        spec: &DatasetSpec,
        fill: Fill,
        check_ids: bool,
    ) -> Result<(ParquetSource, Common)> {
        let path = spec.path.clone();
        let file = File::open(&path).map_err(|source| DataError::Io {
            path: path.clone(),
            source,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| parquet_err(&path, Some("reading metadata".to_owned()), e))?;
        let schema = builder.schema().clone();
        let header: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if header.is_empty() {
            return Err(DataError::EmptyFile { path });
        }
        let selection = select_columns(&path, &header, spec)?;

        let check = |col: &Col, role: ColumnRole, ok: fn(&DataType) -> bool| -> Result<()> {
            let t = schema.field(col.index).data_type();
            if ok(t) {
                Ok(())
            } else {
                Err(DataError::UnsupportedColumnType {
                    path: path.clone(),
                    column: col.number(),
                    column_name: col.name.clone(),
                    role,
                    data_type: t.to_string(),
                })
            }
        };
        check(&selection.id, ColumnRole::Id, is_id_type)?;
        if let Some(l) = &selection.label {
            check(l, ColumnRole::Label, is_numeric_type)?;
        }
        for f in &selection.features {
            check(f, ColumnRole::Feature, is_numeric_type)?;
        }

        let mut roots: Vec<usize> = std::iter::once(selection.id.index)
            .chain(selection.label.iter().map(|c| c.index))
            .chain(selection.features.iter().map(|c| c.index))
            .collect();
        roots.sort_unstable();
        roots.dedup();
        // Position of a file column within the projected batches (roots keep file order).
        let pos = |index: usize| roots.binary_search(&index).unwrap_or_default();
        let id_pos = pos(selection.id.index);
        let label_pos = selection.label.as_ref().map(|c| pos(c.index));
        let feature_pos = selection.features.iter().map(|c| pos(c.index)).collect();

        let mut row_group_starts = Vec::new();
        let mut start = 0u64;
        for rg in builder.metadata().row_groups() {
            row_group_starts.push(start);
            start += u64::try_from(rg.num_rows()).unwrap_or_default();
        }
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        let reader = builder
            .with_projection(mask)
            .with_batch_size(spec.batch_rows)
            .build()
            .map_err(|e| parquet_err(&path, Some("building the reader".to_owned()), e))?;
        debug_assert_eq!(reader.schema().fields().len(), roots.len());
        let common = Common::new(path, selection, fill, check_ids);
        Ok((
            ParquetSource {
                reader,
                id_pos,
                label_pos,
                feature_pos,
                row_group_starts,
                next_row: 0,
            },
            common,
        ))
    }

    fn location(&self, row: u64) -> Location {
        let row_group = self
            .row_group_starts
            .partition_point(|&s| s <= row)
            .saturating_sub(1);
        Location::Row { row, row_group }
    }

    /// Decodes the next record batch (at most `batch_rows` rows, set at open).
    pub fn next_batch(&mut self, common: &mut Common, _max_rows: usize) -> Result<Option<Batch>> {
        let rb: RecordBatch = match self.reader.next() {
            None => return Ok(None),
            Some(Ok(rb)) => rb,
            Some(Err(e)) => {
                let at = self.location(self.next_row);
                return Err(parquet_err(
                    &common.path,
                    Some(format!("decoding from {at}")),
                    e,
                ));
            }
        };
        let n = rb.num_rows();
        let base = self.next_row;

        let raw_ids = id_values(rb.column(self.id_pos));
        let mut ids = Vec::with_capacity(n);
        for (i, id) in raw_ids.into_iter().enumerate() {
            let at = self.location(base + i as u64);
            match id {
                Some(id) if !id.is_empty() => {
                    common.check_id(&id, at)?;
                    ids.push(id);
                }
                _ => return Err(common.missing(&common.selection.id, ColumnRole::Id, at)),
            }
        }

        let common = &*common;
        let labels = match (&common.selection.label, self.label_pos) {
            (Some(col), Some(p)) => {
                let mut labels = Vec::with_capacity(n);
                for_each_f64(rb.column(p), |i, v| match v {
                    Some(v) if !v.is_nan() => {
                        labels.push(v);
                        Ok(())
                    }
                    _ => {
                        Err(common.missing(col, ColumnRole::Label, self.location(base + i as u64)))
                    }
                })?;
                Some(labels)
            }
            _ => None,
        };

        let n_features = self.feature_pos.len();
        let mut features = vec![0.0; n * n_features];
        for (j, &p) in self.feature_pos.iter().enumerate() {
            for_each_f64(rb.column(p), |i, v| {
                features[i * n_features + j] = match v {
                    Some(v) if !v.is_nan() => v,
                    _ => common.missing_feature(j, self.location(base + i as u64))?,
                };
                Ok(())
            })?;
        }
        self.next_row += n as u64;
        Ok(Some(Batch {
            ids,
            labels,
            features,
            n_features,
            categorical: Vec::new(),
            first_row_index: 0,
        }))
    }
}

/// Rows per record batch handed to the Parquet writer.
const WRITE_CHUNK_ROWS: usize = 65_536;

/// Writes `dataset` as a Snappy-compressed Parquet file with columns
/// `id_column` (`Utf8`, non-null), the label if any (`Float64`), then the features
/// (`Float64`), in order. Reading it back with the same column names yields an equal
/// [`Dataset`]. An existing file is overwritten.
pub fn write_parquet(path: impl AsRef<Path>, dataset: &Dataset) -> Result<()> {
    let path = path.as_ref();
    if dataset.n_categorical() > 0 {
        return Err(DataError::InvalidDataset {
            reason: "categorical columns can be written to CSV only (write_csv)".to_owned(),
        });
    }
    let mut fields = vec![Field::new(dataset.id_column(), DataType::Utf8, false)];
    if let Some(l) = dataset.label_name() {
        fields.push(Field::new(l, DataType::Float64, false));
    }
    for name in dataset.feature_names() {
        fields.push(Field::new(name, DataType::Float64, false));
    }
    let schema = Arc::new(Schema::new(fields));
    let file = File::create(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
        .map_err(|e| parquet_err(path, Some("creating the writer".to_owned()), e))?;
    let n_features = dataset.n_features();
    let mut start = 0;
    while start < dataset.n_rows() {
        let end = (start + WRITE_CHUNK_ROWS).min(dataset.n_rows());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        columns.push(Arc::new(StringArray::from_iter_values(
            &dataset.ids()[start..end],
        )));
        if let Some(labels) = dataset.labels() {
            columns.push(Arc::new(Float64Array::from(labels[start..end].to_vec())));
        }
        let rows = &dataset.features()[start * n_features..end * n_features];
        for j in 0..n_features {
            let col =
                Float64Array::from_iter_values(rows.iter().skip(j).step_by(n_features).copied());
            columns.push(Arc::new(col));
        }
        let rb = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| parquet_err(path, Some(format!("building rows {start}..{end}")), e))?;
        writer
            .write(&rb)
            .map_err(|e| parquet_err(path, Some(format!("writing rows {start}..{end}")), e))?;
        start = end;
    }
    writer
        .close()
        .map_err(|e| parquet_err(path, Some("closing the file".to_owned()), e))?;
    Ok(())
}
