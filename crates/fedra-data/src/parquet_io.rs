//! Parquet reading (streaming, with the `parquet` crate's own typed column readers: no
//! Arrow) and writing ([`write_parquet`], with its serialized file and column writers).
//!
//! Supported column types: ids may be strings (`BYTE_ARRAY` annotated `STRING`/`UTF8` or
//! `JSON`) or integers (`INT32`/`INT64`, signed or unsigned, any width; turned into their
//! decimal text); labels and features may be integers, `FLOAT`, `DOUBLE` or `BOOLEAN`
//! (`true` = 1, `false` = 0). These are exactly the columns Arrow reads as `Utf8` or as an
//! integer, `Float32`, `Float64` or `Boolean` type. Any other type in a selected column
//! (dates, times, timestamps, decimals, `INT96`, unannotated or enum binary, fixed-length
//! binary, nested or repeated columns, …) is rejected up front with
//! [`DataError::UnsupportedColumnType`], whose `data_type` names the type as Arrow would
//! (`Date32`, `Binary`, `Decimal128(10, 2)`, `Timestamp(ms, "UTC")`, …). An embedded
//! Arrow schema (`ARROW:schema` metadata) is not consulted: a column written by Arrow as
//! `Date64` or `Duration` (plain `INT64`) reads as integers, a dictionary of strings as
//! strings. Corrupt files, including chunks on which the `parquet` decoder would panic,
//! are [`DataError::Parquet`] errors naming the file (and the row group and column).
//! Only the selected columns are decoded. Nulls and float NaNs are missing values; a null
//! or empty-string id is an error. Row-level errors give the 0-based row index in the file
//! and its row group ([`Location::Row`]). Batches hold `batch_rows` rows (the last one
//! fewer) and may span row groups.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::basic::{
    Compression, ConvertedType, LogicalType, Repetition, TimeUnit, Type as PhysicalType,
};
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::{ByteArray, DataType};
use parquet::errors::ParquetError;
use parquet::file::properties::{DEFAULT_MAX_ROW_GROUP_ROW_COUNT, WriterProperties};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::batch::{Batch, Col, Common, Fill, select_columns};
use crate::dataset::Dataset;
use crate::error::{ColumnRole, DataError, Location, Result};
use crate::spec::DatasetSpec;

/// How an `INT32` column's values are read: Arrow's narrowing/unsigned interpretation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Int32As {
    I8,
    I16,
    I32,
    U8,
    U16,
    U32,
}

/// How a selected column is decoded; `Other` columns are rejected at open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// UTF-8 text (`BYTE_ARRAY`).
    Str,
    /// `BOOLEAN`.
    Bool,
    /// `INT32`, possibly narrower or unsigned.
    Int32(Int32As),
    /// `INT64`, signed or unsigned.
    Int64 { signed: bool },
    /// `FLOAT`.
    Float,
    /// `DOUBLE`.
    Double,
    /// Anything else.
    Other,
}

impl Kind {
    fn is_id(self) -> bool {
        matches!(self, Kind::Str | Kind::Int32(_) | Kind::Int64 { .. })
    }

    fn is_numeric(self) -> bool {
        !matches!(self, Kind::Str | Kind::Other)
    }
}

/// Arrow's name for a time unit.
fn unit_name(unit: &TimeUnit) -> &'static str {
    match unit {
        TimeUnit::MILLIS => "ms",
        TimeUnit::MICROS => "µs",
        TimeUnit::NANOS => "ns",
    }
}

/// Arrow's name for a timestamp type.
fn timestamp_name(unit: &str, utc: bool) -> String {
    if utc {
        format!("Timestamp({unit}, \"UTC\")")
    } else {
        format!("Timestamp({unit})")
    }
}

/// Name of a type Arrow cannot read, in Parquet's terms.
fn unconvertible(physical: PhysicalType, field: &Type) -> String {
    let info = field.get_basic_info();
    match info.logical_type_ref() {
        Some(l) => format!("{physical} ({l:?})"),
        None => format!("{physical} ({})", info.converted_type()),
    }
}

/// Decimal name as Arrow infers it (`Decimal128` up to 38 digits, else `Decimal256`).
fn decimal_name(precision: i32, scale: i32, wide: bool) -> String {
    let bits = if wide || precision > 38 { 256 } else { 128 };
    format!("Decimal{bits}({precision}, {scale})")
}

/// Classifies a top-level schema field, with its type named as Arrow would infer it
/// from the Parquet schema (mirrors `parquet::arrow::schema::primitive` without an
/// embedded Arrow schema).
fn classify(field: &Type) -> (Kind, String) {
    let info = field.get_basic_info();
    let Type::PrimitiveType {
        physical_type,
        type_length,
        scale,
        precision,
        ..
    } = field
    else {
        let name = match (info.logical_type_ref(), info.converted_type()) {
            (Some(LogicalType::List), _) | (None, ConvertedType::LIST) => "List",
            (Some(LogicalType::Map), _)
            | (None, ConvertedType::MAP | ConvertedType::MAP_KEY_VALUE) => "Map",
            _ => "Struct",
        };
        return (Kind::Other, name.to_owned());
    };
    let physical = *physical_type;
    let (kind, name) = classify_primitive(field, physical, *type_length, *scale, *precision);
    if info.has_repetition() && info.repetition() == Repetition::REPEATED {
        return (Kind::Other, format!("List({name})"));
    }
    (kind, name)
}

fn classify_primitive(
    field: &Type,
    physical: PhysicalType,
    type_length: i32,
    scale: i32,
    precision: i32,
) -> (Kind, String) {
    let info = field.get_basic_info();
    let logical = info.logical_type_ref();
    let converted = info.converted_type();
    if let Some(LogicalType::Unknown) = logical {
        return (Kind::Other, "Null".to_owned());
    }
    let other = |name: String| (Kind::Other, name);
    let int32 = |a: Int32As, name: &str| (Kind::Int32(a), name.to_owned());
    match physical {
        PhysicalType::BOOLEAN => (Kind::Bool, "Boolean".to_owned()),
        PhysicalType::FLOAT => (Kind::Float, "Float32".to_owned()),
        PhysicalType::DOUBLE => (Kind::Double, "Float64".to_owned()),
        PhysicalType::INT96 => other("Timestamp(ns)".to_owned()),
        PhysicalType::INT32 => match (logical, converted) {
            (None, ConvertedType::NONE | ConvertedType::INT_32) => int32(Int32As::I32, "Int32"),
            (Some(LogicalType::Integer(t)), _) => match (t.bit_width, t.is_signed) {
                (8, true) => int32(Int32As::I8, "Int8"),
                (16, true) => int32(Int32As::I16, "Int16"),
                (32, true) => int32(Int32As::I32, "Int32"),
                (8, false) => int32(Int32As::U8, "UInt8"),
                (16, false) => int32(Int32As::U16, "UInt16"),
                (32, false) => int32(Int32As::U32, "UInt32"),
                _ => other(unconvertible(physical, field)),
            },
            (None, ConvertedType::INT_8) => int32(Int32As::I8, "Int8"),
            (None, ConvertedType::INT_16) => int32(Int32As::I16, "Int16"),
            (None, ConvertedType::UINT_8) => int32(Int32As::U8, "UInt8"),
            (None, ConvertedType::UINT_16) => int32(Int32As::U16, "UInt16"),
            (None, ConvertedType::UINT_32) => int32(Int32As::U32, "UInt32"),
            (Some(LogicalType::Decimal(d)), _) => other(decimal_name(d.precision, d.scale, false)),
            (None, ConvertedType::DECIMAL) => other(decimal_name(precision, scale, false)),
            (Some(LogicalType::Date), _) | (None, ConvertedType::DATE) => other("Date32".into()),
            (Some(LogicalType::Time(t)), _) if t.unit == TimeUnit::MILLIS => {
                other("Time32(ms)".to_owned())
            }
            (None, ConvertedType::TIME_MILLIS) => other("Time32(ms)".to_owned()),
            _ => other(unconvertible(physical, field)),
        },
        PhysicalType::INT64 => match (logical, converted) {
            (None, ConvertedType::NONE | ConvertedType::INT_64) => {
                (Kind::Int64 { signed: true }, "Int64".to_owned())
            }
            (Some(LogicalType::Integer(t)), _) if t.bit_width == 64 => {
                if t.is_signed {
                    (Kind::Int64 { signed: true }, "Int64".to_owned())
                } else {
                    (Kind::Int64 { signed: false }, "UInt64".to_owned())
                }
            }
            (None, ConvertedType::UINT_64) => (Kind::Int64 { signed: false }, "UInt64".to_owned()),
            (Some(LogicalType::Time(t)), _) if t.unit != TimeUnit::MILLIS => {
                other(format!("Time64({})", unit_name(&t.unit)))
            }
            (None, ConvertedType::TIME_MICROS) => other("Time64(µs)".to_owned()),
            (Some(LogicalType::Timestamp(t)), _) => {
                other(timestamp_name(unit_name(&t.unit), t.is_adjusted_to_u_t_c))
            }
            (None, ConvertedType::TIMESTAMP_MILLIS) => other(timestamp_name("ms", true)),
            (None, ConvertedType::TIMESTAMP_MICROS) => other(timestamp_name("µs", true)),
            (Some(LogicalType::Decimal(d)), _) => other(decimal_name(d.precision, d.scale, false)),
            (None, ConvertedType::DECIMAL) => other(decimal_name(precision, scale, false)),
            _ => other(unconvertible(physical, field)),
        },
        PhysicalType::BYTE_ARRAY => match (logical, converted) {
            (Some(LogicalType::String | LogicalType::Json), _)
            | (None, ConvertedType::UTF8 | ConvertedType::JSON) => (Kind::Str, "Utf8".to_owned()),
            (Some(LogicalType::Decimal(d)), _) => other(decimal_name(d.precision, d.scale, false)),
            (None, ConvertedType::DECIMAL) => other(decimal_name(precision, scale, false)),
            (
                Some(
                    LogicalType::Bson
                    | LogicalType::Enum
                    | LogicalType::Geometry { .. }
                    | LogicalType::Geography { .. }
                    | LogicalType::_Unknown { .. },
                ),
                _,
            )
            | (None, ConvertedType::NONE | ConvertedType::BSON | ConvertedType::ENUM) => {
                other("Binary".to_owned())
            }
            _ => other(unconvertible(physical, field)),
        },
        PhysicalType::FIXED_LEN_BYTE_ARRAY => match (logical, converted) {
            (Some(LogicalType::Decimal(d)), _) => {
                other(decimal_name(d.precision, d.scale, type_length > 16))
            }
            (None, ConvertedType::DECIMAL) => {
                other(decimal_name(precision, scale, type_length > 16))
            }
            (None, ConvertedType::INTERVAL) => other("Interval(DayTime)".to_owned()),
            (Some(LogicalType::Float16), _) => other("Float16".to_owned()),
            _ => other(format!("FixedSizeBinary({type_length})")),
        },
    }
}

/// An `INT32` value as Arrow reads it (narrowing casts wrap, as Arrow's do).
#[inline]
fn int32_value(v: i32, a: Int32As) -> i64 {
    match a {
        Int32As::I8 => i64::from(v as i8),
        Int32As::I16 => i64::from(v as i16),
        Int32As::I32 => i64::from(v),
        Int32As::U8 => i64::from(v as u8),
        Int32As::U16 => i64::from(v as u16),
        Int32As::U32 => i64::from(v as u32),
    }
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

fn general(message: impl Into<String>) -> ParquetError {
    ParquetError::General(message.into())
}

/// Runs a `parquet` call on data read from the file, turning a panic into an error.
///
/// The `parquet` crate asserts on some malformed input instead of returning an error
/// (e.g. `read_num_bytes`' length assertion in the PLAIN byte-array decoder, the VLQ
/// length assertion in `BitReader::get_vlq_int`): a corrupt file must be an error naming
/// the file, never a crash. After such an error the reader is not used again (a
/// [`BatchReader`](crate::BatchReader) is exhausted after its first error).
fn guard<T>(f: impl FnOnce() -> parquet::errors::Result<T>) -> parquet::errors::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(general(format!("malformed data ({message})")))
    })
}

/// Reads up to `n` records of a flat column (no repetition) and calls `emit` per row, with
/// `None` for nulls. Returns the number of rows read (fewer than `n` only at the end of
/// the column chunk).
fn read_values<T: DataType>(
    reader: &mut ColumnReaderImpl<T>,
    n: usize,
    max_def: i16,
    defs: &mut Vec<i16>,
    mut emit: impl FnMut(Option<&T::T>) -> parquet::errors::Result<()>,
) -> parquet::errors::Result<usize> {
    defs.clear();
    let mut values = Vec::with_capacity(n);
    let levels = (max_def > 0).then_some(&mut *defs);
    let (rows, _, _) = reader.read_records(n, levels, None, &mut values)?;
    if max_def == 0 {
        if values.len() != rows {
            return Err(general(format!(
                "{} values for {rows} rows in a required column",
                values.len()
            )));
        }
        for v in &values {
            emit(Some(v))?;
        }
    } else {
        if defs.len() != rows {
            return Err(general(format!(
                "{} definition levels for {rows} rows",
                defs.len()
            )));
        }
        let mut it = values.iter();
        for &d in defs.iter() {
            if d == max_def {
                let v = it
                    .next()
                    .ok_or_else(|| general("fewer values than definition levels"))?;
                emit(Some(v))?;
            } else {
                emit(None)?;
            }
        }
    }
    Ok(rows)
}

fn reader_mismatch() -> ParquetError {
    general("column reader does not match the column's type")
}

/// Appends up to `n` values of a numeric column to `out` (NaN for nulls).
fn decode_numeric(
    reader: &mut ColumnReader,
    kind: Kind,
    n: usize,
    max_def: i16,
    defs: &mut Vec<i16>,
    out: &mut Vec<f64>,
) -> parquet::errors::Result<usize> {
    let mut push = |v: Option<f64>| {
        out.push(v.unwrap_or(f64::NAN));
        Ok(())
    };
    match (reader, kind) {
        (ColumnReader::BoolColumnReader(r), Kind::Bool) => read_values(r, n, max_def, defs, |v| {
            push(v.map(|&b| if b { 1.0 } else { 0.0 }))
        }),
        (ColumnReader::Int32ColumnReader(r), Kind::Int32(a)) => {
            read_values(r, n, max_def, defs, |v| {
                push(v.map(|&x| int32_value(x, a) as f64))
            })
        }
        (ColumnReader::Int64ColumnReader(r), Kind::Int64 { signed }) => {
            read_values(r, n, max_def, defs, |v| {
                push(v.map(|&x| if signed { x as f64 } else { x as u64 as f64 }))
            })
        }
        (ColumnReader::FloatColumnReader(r), Kind::Float) => {
            read_values(r, n, max_def, defs, |v| push(v.map(|&x| f64::from(x))))
        }
        (ColumnReader::DoubleColumnReader(r), Kind::Double) => {
            read_values(r, n, max_def, defs, |v| push(v.copied()))
        }
        _ => Err(reader_mismatch()),
    }
}

/// Appends up to `n` ids to `out` (the empty string for nulls, which counts as missing).
fn decode_ids(
    reader: &mut ColumnReader,
    kind: Kind,
    n: usize,
    max_def: i16,
    defs: &mut Vec<i16>,
    out: &mut Vec<String>,
) -> parquet::errors::Result<usize> {
    match (reader, kind) {
        (ColumnReader::ByteArrayColumnReader(r), Kind::Str) => {
            read_values(r, n, max_def, defs, |v| {
                let s = match v {
                    Some(b) => std::str::from_utf8(b.data())
                        .map_err(|_| general("invalid UTF-8 in a string id"))?,
                    None => "",
                };
                out.push(s.to_owned());
                Ok(())
            })
        }
        (ColumnReader::Int32ColumnReader(r), Kind::Int32(a)) => {
            read_values(r, n, max_def, defs, |v| {
                out.push(
                    v.map(|&x| int32_value(x, a).to_string())
                        .unwrap_or_default(),
                );
                Ok(())
            })
        }
        (ColumnReader::Int64ColumnReader(r), Kind::Int64 { signed }) => {
            read_values(r, n, max_def, defs, |v| {
                out.push(
                    v.map(|&x| {
                        if signed {
                            x.to_string()
                        } else {
                            (x as u64).to_string()
                        }
                    })
                    .unwrap_or_default(),
                );
                Ok(())
            })
        }
        _ => Err(reader_mismatch()),
    }
}

/// A selected column: where it is in the file and how to decode it.
struct Slot {
    col: Col,
    /// Index of its (only) leaf column.
    leaf: usize,
    kind: Kind,
    /// 1 for a nullable column, 0 for a required one.
    max_def: i16,
}

/// Streaming Parquet source.
pub(crate) struct ParquetSource {
    file: SerializedFileReader<File>,
    /// The selected columns: the id, then the label (if any), then the features.
    slots: Vec<Slot>,
    /// First row index of each row group.
    row_group_starts: Vec<u64>,
    /// Rows in each row group.
    row_group_rows: Vec<u64>,
    /// The next row group to open.
    next_group: usize,
    /// Readers into the open row group, one per slot.
    readers: Vec<ColumnReader>,
    /// Rows not yet read from the open row group.
    group_left: u64,
    next_row: u64,
    /// Definition-level scratch buffer.
    defs: Vec<i16>,
}

impl ParquetSource {
    /// Opens the file, reads its footer and checks the selected columns' types.
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
        let file_len = file.metadata().map_or(u64::MAX, |m| m.len());
        let file = guard(|| SerializedFileReader::new(file))
            .map_err(|e| parquet_err(&path, Some("reading metadata".to_owned()), e))?;
        let metadata = file.metadata();
        let schema = metadata.file_metadata().schema_descr();
        let fields: &[Arc<Type>] = match schema.root_schema() {
            Type::GroupType { fields, .. } => fields,
            Type::PrimitiveType { .. } => &[],
        };
        let header: Vec<String> = fields.iter().map(|f| f.name().to_owned()).collect();
        if header.is_empty() {
            return Err(DataError::EmptyFile { path });
        }
        let selection = select_columns(&path, &header, spec)?;

        // The leaf column of each top-level primitive field.
        let mut leaf_of = vec![None; fields.len()];
        for leaf in 0..schema.num_columns() {
            let root = schema.get_column_root_idx(leaf);
            if let Some(slot) = leaf_of.get_mut(root)
                && fields.get(root).is_some_and(|f| f.is_primitive())
            {
                *slot = Some(leaf);
            }
        }

        let slot = |col: &Col, role: ColumnRole, ok: fn(Kind) -> bool| -> Result<Slot> {
            let field = fields.get(col.index);
            let (kind, name) = field.map_or((Kind::Other, String::new()), |f| classify(f));
            let leaf = leaf_of.get(col.index).copied().flatten();
            match leaf {
                Some(leaf) if ok(kind) => Ok(Slot {
                    col: col.clone(),
                    leaf,
                    kind,
                    max_def: schema.column(leaf).max_def_level(),
                }),
                _ => Err(DataError::UnsupportedColumnType {
                    path: path.clone(),
                    column: col.number(),
                    column_name: col.name.clone(),
                    role,
                    data_type: name,
                }),
            }
        };
        let mut slots = vec![slot(&selection.id, ColumnRole::Id, Kind::is_id)?];
        if let Some(l) = &selection.label {
            slots.push(slot(l, ColumnRole::Label, Kind::is_numeric)?);
        }
        for f in &selection.features {
            slots.push(slot(f, ColumnRole::Feature, Kind::is_numeric)?);
        }

        let mut row_group_starts = Vec::with_capacity(metadata.num_row_groups());
        let mut row_group_rows = Vec::with_capacity(metadata.num_row_groups());
        let mut start = 0u64;
        for (i, rg) in metadata.row_groups().iter().enumerate() {
            let rows = u64::try_from(rg.num_rows()).map_err(|_| {
                parquet_err(
                    &path,
                    Some("reading metadata".to_owned()),
                    general(format!(
                        "row group {i} has a negative row count ({})",
                        rg.num_rows()
                    )),
                )
            })?;
            row_group_starts.push(start);
            row_group_rows.push(rows);
            start = start.saturating_add(rows);
            // The page reader asserts on negative offsets: check the selected chunks here.
            for s in &slots {
                let Some(chunk) = rg.columns().get(s.leaf) else {
                    return Err(parquet_err(
                        &path,
                        Some("reading metadata".to_owned()),
                        general(format!("row group {i} has no chunk for column {}", s.leaf)),
                    ));
                };
                let offset = chunk
                    .dictionary_page_offset()
                    .unwrap_or(chunk.data_page_offset());
                let in_file = u64::try_from(offset)
                    .ok()
                    .zip(u64::try_from(chunk.compressed_size()).ok())
                    .and_then(|(o, l)| o.checked_add(l))
                    .is_some_and(|end| end <= file_len);
                if !in_file {
                    return Err(parquet_err(
                        &path,
                        Some("reading metadata".to_owned()),
                        general(format!(
                            "column {} ({:?}) in row group {i}: chunk at offset {offset}, {} bytes, is not within the file ({file_len} bytes)",
                            s.col.number(),
                            s.col.name,
                            chunk.compressed_size()
                        )),
                    ));
                }
            }
        }
        let common = Common::new(path, selection, fill, check_ids);
        Ok((
            ParquetSource {
                file,
                slots,
                row_group_starts,
                row_group_rows,
                next_group: 0,
                readers: Vec::new(),
                group_left: 0,
                next_row: 0,
                defs: Vec::new(),
            },
            common,
        ))
    }

    fn location(&self, row: u64) -> Location {
        location(&self.row_group_starts, row)
    }

    /// Opens readers for the selected columns of the next row group; `false` at the end
    /// of the file.
    fn open_next_group(&mut self, path: &Path) -> Result<bool> {
        let g = self.next_group;
        let Some(&rows) = self.row_group_rows.get(g) else {
            return Ok(false);
        };
        let group = guard(|| self.file.get_row_group(g))
            .map_err(|e| parquet_err(path, Some(format!("opening row group {g}")), e))?;
        let mut readers = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let reader = guard(|| group.get_column_reader(s.leaf)).map_err(|e| {
                parquet_err(
                    path,
                    Some(format!(
                        "opening column {} ({:?}) in row group {g}",
                        s.col.number(),
                        s.col.name
                    )),
                    e,
                )
            })?;
            readers.push(reader);
        }
        self.readers = readers;
        self.group_left = rows;
        self.next_group += 1;
        Ok(true)
    }

    /// Decodes the next `max_rows` rows (fewer at the end of the file), across row
    /// groups.
    pub fn next_batch(&mut self, common: &mut Common, max_rows: usize) -> Result<Option<Batch>> {
        let base = self.next_row;
        let mut ids: Vec<String> = Vec::new();
        // Label then feature values, one vector per column (NaN = missing).
        let mut columns: Vec<Vec<f64>> = (1..self.slots.len()).map(|_| Vec::new()).collect();
        let mut n = 0usize;
        while n < max_rows {
            if self.group_left == 0 {
                if self.open_next_group(&common.path)? {
                    continue;
                }
                break;
            }
            let take = usize::try_from(self.group_left)
                .map_or(max_rows - n, |left| left.min(max_rows - n));
            let at = self.location(base + n as u64);
            for (k, (s, reader)) in self.slots.iter().zip(self.readers.iter_mut()).enumerate() {
                let defs = &mut self.defs;
                let decoded = match k.checked_sub(1).and_then(|c| columns.get_mut(c)) {
                    None => guard(|| decode_ids(reader, s.kind, take, s.max_def, defs, &mut ids)),
                    Some(out) => {
                        guard(|| decode_numeric(reader, s.kind, take, s.max_def, defs, out))
                    }
                };
                let context = || {
                    Some(format!(
                        "decoding column {} ({:?}) from {at}",
                        s.col.number(),
                        s.col.name
                    ))
                };
                match decoded {
                    Ok(got) if got == take => {}
                    Ok(got) => {
                        return Err(parquet_err(
                            &common.path,
                            context(),
                            general(format!(
                                "column chunk ended after {got} of the {take} rows expected"
                            )),
                        ));
                    }
                    Err(e) => return Err(parquet_err(&common.path, context(), e)),
                }
            }
            self.group_left -= take as u64;
            n += take;
        }
        if n == 0 {
            return Ok(None);
        }

        for (i, id) in ids.iter().enumerate() {
            let at = self.location(base + i as u64);
            if id.is_empty() {
                return Err(common.missing(&common.selection.id, ColumnRole::Id, at));
            }
            common.check_id(id, at)?;
        }

        let common = &*common;
        let mut columns = columns.into_iter();
        let labels = match &common.selection.label {
            Some(col) => {
                let labels = columns.next().unwrap_or_default();
                if let Some(i) = labels.iter().position(|v| v.is_nan()) {
                    let at = self.location(base + i as u64);
                    return Err(common.missing(col, ColumnRole::Label, at));
                }
                if let Some(i) = labels.iter().position(|v| v.is_infinite()) {
                    let at = self.location(base + i as u64);
                    return Err(common.non_finite(col, at, &labels[i].to_string()));
                }
                Some(labels)
            }
            None => None,
        };

        let n_features = self.slots.len() - 1 - usize::from(labels.is_some());
        let mut features = vec![0.0; n * n_features];
        for (j, values) in columns.enumerate() {
            for (i, v) in values.into_iter().enumerate() {
                features[i * n_features + j] = if v.is_nan() {
                    common.missing_feature(j, self.location(base + i as u64))?
                } else if v.is_infinite() {
                    let col = &common.selection.features[j];
                    return Err(common.non_finite(
                        col,
                        self.location(base + i as u64),
                        &v.to_string(),
                    ));
                } else {
                    v
                };
            }
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

/// The location of `row`, given the first row index of each row group.
fn location(row_group_starts: &[u64], row: u64) -> Location {
    let row_group = row_group_starts
        .partition_point(|&s| s <= row)
        .saturating_sub(1);
    Location::Row { row, row_group }
}

/// Rows per chunk handed to a column writer (bounds the transposed copy of a feature).
const WRITE_CHUNK_ROWS: usize = 65_536;

/// Writes `dataset` as a Snappy-compressed Parquet file with columns
/// `id_column` (UTF-8 string, required), the label if any (double), then the features
/// (double), in order, in row groups of at most 1 Mi rows. Reading it back with the same
/// column names yields an equal [`Dataset`]. An existing file is overwritten.
pub fn write_parquet(path: impl AsRef<Path>, dataset: &Dataset) -> Result<()> {
    let path = path.as_ref();
    if dataset.n_categorical() > 0 {
        return Err(DataError::InvalidDataset {
            reason: "categorical columns can be written to CSV only (write_csv)".to_owned(),
        });
    }
    let err = |context: String| move |e: ParquetError| parquet_err(path, Some(context), e);
    let schema = write_schema(dataset).map_err(err("creating the writer".to_owned()))?;
    let file = File::create(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(props))
        .map_err(err("creating the writer".to_owned()))?;
    let n_rows = dataset.n_rows();
    let mut group_start = 0;
    while group_start < n_rows {
        let group_end = n_rows.min(group_start + DEFAULT_MAX_ROW_GROUP_ROW_COUNT);
        let rows = format!("rows {group_start}..{group_end}");
        write_row_group(&mut writer, dataset, group_start, group_end)
            .map_err(err(format!("writing {rows}")))?;
        group_start = group_end;
    }
    writer.close().map_err(err("closing the file".to_owned()))?;
    Ok(())
}

/// The Parquet schema `write_parquet` writes for `dataset`.
fn write_schema(dataset: &Dataset) -> parquet::errors::Result<Type> {
    let double = |name: &str| {
        Type::primitive_type_builder(name, PhysicalType::DOUBLE)
            .with_repetition(Repetition::REQUIRED)
            .build()
            .map(Arc::new)
    };
    let mut fields = vec![Arc::new(
        Type::primitive_type_builder(dataset.id_column(), PhysicalType::BYTE_ARRAY)
            .with_repetition(Repetition::REQUIRED)
            .with_logical_type(Some(LogicalType::String))
            .build()?,
    )];
    if let Some(l) = dataset.label_name() {
        fields.push(double(l)?);
    }
    for name in dataset.feature_names() {
        fields.push(double(name)?);
    }
    Type::group_type_builder("schema")
        .with_fields(fields)
        .build()
}

/// Writes rows `start..end` of `dataset` as one row group.
fn write_row_group(
    writer: &mut SerializedFileWriter<File>,
    dataset: &Dataset,
    start: usize,
    end: usize,
) -> parquet::errors::Result<()> {
    let mut group = writer.next_row_group()?;
    let n_features = dataset.n_features();
    // Column `c`: 0 = id, then the label if any, then the features.
    let n_columns = 1 + usize::from(dataset.labels().is_some()) + n_features;
    for c in 0..n_columns {
        let mut column = group
            .next_column()?
            .ok_or_else(|| general("the schema has fewer columns than the dataset"))?;
        let mut chunk_start = start;
        while chunk_start < end {
            let chunk_end = end.min(chunk_start + WRITE_CHUNK_ROWS);
            match column.untyped() {
                ColumnWriter::ByteArrayColumnWriter(w) if c == 0 => {
                    let ids: Vec<ByteArray> = dataset.ids()[chunk_start..chunk_end]
                        .iter()
                        .map(|s| ByteArray::from(s.as_str()))
                        .collect();
                    w.write_batch(&ids, None, None)?;
                }
                ColumnWriter::DoubleColumnWriter(w) if c > 0 => {
                    let values: Vec<f64> = match (c - 1, dataset.labels()) {
                        (0, Some(labels)) => labels[chunk_start..chunk_end].to_vec(),
                        (k, labels) => {
                            let j = k - usize::from(labels.is_some());
                            (chunk_start..chunk_end)
                                .map(|i| dataset.features()[i * n_features + j])
                                .collect()
                        }
                    };
                    w.write_batch(&values, None, None)?;
                }
                _ => return Err(general("column writer does not match the column's type")),
            }
            chunk_start = chunk_end;
        }
        column.close()?;
    }
    group.close()?;
    Ok(())
}
