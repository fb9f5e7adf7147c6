//! Integration tests for fedra-data: bad-input classes with exact errors, missing-value
//! policies, streaming, Parquet and CSV round trips, and the real FATE datasets.

// Helpers outside `#[test]` functions are not covered by clippy.toml's test allowance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float32Array, Float64Array, Int64Array, RecordBatch,
    StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use fedra_data::{
    ColumnRole, DataError, Dataset, DatasetSpec, Format, Location, MissingPolicy, load, open,
    write_csv, write_parquet,
};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use tempfile::TempDir;

/// The shared FATE datasets directory, or `None` (with a note) if it is absent.
fn fate_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fate");
    // The data ships with the repository (data/): its absence is a broken checkout,
    // never a reason to pass.
    assert!(
        dir.is_dir(),
        "{} is missing: run the tests from a full clone",
        dir.display()
    );
    Some(dir)
}

/// Writes `content` to `name` in a fresh temp dir.
fn temp_file(name: &str, content: &[u8]) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, path)
}

fn load_err(spec: &DatasetSpec) -> DataError {
    load(spec).expect_err("expected an error")
}

// ---------------------------------------------------------------- bad CSV input

#[test]
fn ragged_row_names_line_and_counts() {
    let (_d, path) = temp_file("r.csv", b"id,y,x0\n1,0,1.5\n2,1\n3,0,2.5\n");
    let err = load_err(&DatasetSpec::new(&path).with_label("y"));
    match &err {
        DataError::RaggedRow {
            path: p,
            at,
            expected,
            found,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*at, Location::Line(3));
            assert_eq!((*expected, *found), (3, 2));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "ragged_row");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 3: wrong number of fields: expected 3 (as in the header), found 2",
            path.display()
        )
    );
    // Too many fields too.
    let (_d, path) = temp_file("r.csv", b"id,x0\n1,1.5,7\n");
    assert!(matches!(
        load_err(&DatasetSpec::new(&path)),
        DataError::RaggedRow {
            at: Location::Line(2),
            expected: 2,
            found: 3,
            ..
        }
    ));
}

#[test]
fn non_numeric_feature_names_line_column_and_text() {
    let (_d, path) = temp_file("n.csv", b"id,x0,x1\n1,1.0,2.0\n2,3.0,abc\n");
    let err = load_err(&DatasetSpec::new(&path));
    match &err {
        DataError::NotNumeric {
            at,
            column,
            column_name,
            text,
            ..
        } => {
            assert_eq!(*at, Location::Line(3));
            assert_eq!(*column, 3);
            assert_eq!(column_name, "x1");
            assert_eq!(text, "abc");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "not_numeric");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 3, column 3 (\"x1\"): not a number: \"abc\"",
            path.display()
        )
    );

    // Long offending text is truncated to 40 characters.
    let long = "z".repeat(100);
    let (_d, path) = temp_file("n.csv", format!("id,x0\n1,{long}\n").as_bytes());
    match load_err(&DatasetSpec::new(&path)) {
        DataError::NotNumeric { text, .. } => assert_eq!(text, format!("{}…", "z".repeat(40))),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn non_numeric_label_is_rejected() {
    let (_d, path) = temp_file("l.csv", b"id,y,x0\na,yes,1\n");
    match load_err(&DatasetSpec::new(&path).with_label("y")) {
        DataError::NotNumeric {
            at: Location::Line(2),
            column: 2,
            column_name,
            text,
            ..
        } => {
            assert_eq!(column_name, "y");
            assert_eq!(text, "yes");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A missing label is an error whatever the policy.
    let (_d, path) = temp_file("l.csv", b"id,y,x0\na,,1\n");
    let err = load_err(
        &DatasetSpec::new(&path)
            .with_label("y")
            .with_missing(MissingPolicy::Fill(0.0)),
    );
    assert!(matches!(
        err,
        DataError::MissingValue {
            role: ColumnRole::Label,
            column: 2,
            at: Location::Line(2),
            ..
        }
    ));
}

#[test]
fn empty_file_has_no_header() {
    for content in [&b""[..], b"\n\n", b"\r\n"] {
        let (_d, path) = temp_file("e.csv", content);
        let err = load_err(&DatasetSpec::new(&path));
        assert!(
            matches!(&err, DataError::EmptyFile { path: p } if *p == path),
            "{err:?}"
        );
        assert_eq!(err.code(), "empty_file");
        assert_eq!(
            err.to_string(),
            format!("{}: file is empty: no header line found", path.display())
        );
        // Streaming reports it at open.
        assert_eq!(
            open(&DatasetSpec::new(&path)).unwrap_err().code(),
            "empty_file"
        );
    }
    // A header with no rows is a valid, empty dataset.
    let (_d, path) = temp_file("h.csv", b"id,y,x0\n");
    let ds = load(&DatasetSpec::new(&path).with_label("y")).unwrap();
    assert_eq!((ds.n_rows(), ds.n_features()), (0, 1));
    assert_eq!(open(&DatasetSpec::new(&path)).unwrap().count(), 0);
}

#[test]
fn unknown_columns_list_available_ones() {
    let (_d, path) = temp_file("c.csv", b"uid,y,x0\n1,0,1\n");
    let err = load_err(&DatasetSpec::new(&path));
    match &err {
        DataError::ColumnNotFound {
            role,
            name,
            available,
            ..
        } => {
            assert_eq!(*role, ColumnRole::Id);
            assert_eq!(name, "id");
            assert_eq!(available, &["uid", "y", "x0"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "column_not_found");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: id column \"id\" not found; available columns: uid, y, x0",
            path.display()
        )
    );
    let err = load_err(
        &DatasetSpec::new(&path)
            .with_id_column("uid")
            .with_label("label"),
    );
    assert!(matches!(
        err,
        DataError::ColumnNotFound {
            role: ColumnRole::Label,
            ..
        }
    ));
    let err = load_err(
        &DatasetSpec::new(&path)
            .with_id_column("uid")
            .with_features(["x0", "x9"]),
    );
    assert!(matches!(
        &err,
        DataError::ColumnNotFound { role: ColumnRole::Feature, name, .. } if name == "x9"
    ));
}

#[test]
fn duplicate_header_column_is_rejected() {
    let (_d, path) = temp_file("c.csv", b"id,x0,x1,x0\n1,0,1,2\n");
    match load_err(&DatasetSpec::new(&path)) {
        DataError::DuplicateColumn {
            name,
            first,
            second,
            ..
        } => assert_eq!((name.as_str(), first, second), ("x0", 2, 4)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn invalid_utf8_names_line_and_column() {
    let (_d, path) = temp_file("u.csv", b"id,x0\n1,2\n\xff\xfe,3\n");
    let err = load_err(&DatasetSpec::new(&path));
    match &err {
        DataError::InvalidUtf8 {
            at,
            column,
            column_name,
            ..
        } => {
            assert_eq!(*at, Location::Line(3));
            assert_eq!(*column, Some(1));
            assert_eq!(column_name.as_deref(), Some("id"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "invalid_utf8");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 3, column 1 (\"id\"): invalid UTF-8",
            path.display()
        )
    );
    // In the header.
    let (_d, path) = temp_file("u.csv", b"id,x\xff\n1,2\n");
    assert!(matches!(
        load_err(&DatasetSpec::new(&path)),
        DataError::InvalidUtf8 {
            at: Location::Line(1),
            column: Some(2),
            column_name: None,
            ..
        }
    ));
}

#[test]
fn unreadable_file_and_unknown_extension() {
    let err = load_err(&DatasetSpec::new("/nonexistent/dir/data.csv"));
    assert_eq!(err.code(), "io");
    assert!(
        err.to_string()
            .starts_with("/nonexistent/dir/data.csv: I/O error")
    );
    let err = load_err(&DatasetSpec::new("/nonexistent/data.json"));
    assert_eq!(err.code(), "unknown_format");
}

// ---------------------------------------------------------------- missing values

const WITH_MISSING: &[u8] = b"id,x0,x1\na,1,NA\nb,,4\nc,3,nan\nd,NULL,NaN\ne,5,null\n";

#[test]
fn missing_value_under_error_policy() {
    let (_d, path) = temp_file("m.csv", WITH_MISSING);
    let err = load_err(&DatasetSpec::new(&path));
    match &err {
        DataError::MissingValue {
            at,
            column,
            column_name,
            role,
            ..
        } => {
            assert_eq!(*at, Location::Line(2));
            assert_eq!(*column, 3);
            assert_eq!(column_name, "x1");
            assert_eq!(*role, ColumnRole::Feature);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "missing_value");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 2, column 3 (\"x1\"): missing value (missing policy is `error`)",
            path.display()
        )
    );
}

#[test]
fn missing_value_fill_and_mean() {
    let (_d, path) = temp_file("m.csv", WITH_MISSING);
    let ds = load(&DatasetSpec::new(&path).with_missing(MissingPolicy::Fill(-1.0))).unwrap();
    assert_eq!(
        ds.features(),
        &[1.0, -1.0, -1.0, 4.0, 3.0, -1.0, -1.0, -1.0, 5.0, -1.0]
    );

    let spec = DatasetSpec::new(&path).with_missing(MissingPolicy::Mean);
    let ds = load(&spec).unwrap();
    // x0 mean = (1+3+5)/3 = 3; x1 mean = 4.
    assert_eq!(
        ds.features(),
        &[1.0, 4.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0, 5.0, 4.0]
    );
    // Streaming with the mean policy gives the same values.
    let streamed: Vec<f64> = open(&spec.clone().with_batch_rows(2))
        .unwrap()
        .flat_map(|b| b.unwrap().features)
        .collect();
    assert_eq!(streamed, ds.features());

    // A column with no value at all has no mean.
    let (_d, path) = temp_file("m.csv", b"id,x0,x1\na,1,\nb,2,NA\n");
    for result in [
        load(&DatasetSpec::new(&path).with_missing(MissingPolicy::Mean)).map(|_| ()),
        open(&DatasetSpec::new(&path).with_missing(MissingPolicy::Mean)).map(|_| ()),
    ] {
        match result.unwrap_err() {
            DataError::NoValuesForMean {
                column,
                column_name,
                ..
            } => assert_eq!((column, column_name.as_str()), (3, "x1")),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn empty_id_is_an_error() {
    let (_d, path) = temp_file("i.csv", b"id,x0\n,1\n");
    assert!(matches!(
        load_err(&DatasetSpec::new(&path).with_missing(MissingPolicy::Fill(0.0))),
        DataError::MissingValue {
            role: ColumnRole::Id,
            column: 1,
            at: Location::Line(2),
            ..
        }
    ));
}

// ---------------------------------------------------------------- ids

#[test]
fn duplicate_id_names_both_lines() {
    let (_d, path) = temp_file("d.csv", b"id,x0\na,1\nb,2\na,3\n");
    let err = load_err(&DatasetSpec::new(&path));
    match &err {
        DataError::DuplicateId {
            id, first, second, ..
        } => {
            assert_eq!(id, "a");
            assert_eq!(*first, Location::Line(2));
            assert_eq!(*second, Location::Line(4));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "duplicate_id");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: duplicate id \"a\" at line 2 and line 4",
            path.display()
        )
    );
    // Across batch boundaries too.
    let mut it = open(&DatasetSpec::new(&path).with_batch_rows(1)).unwrap();
    assert!(it.next().unwrap().is_ok());
    assert!(it.next().unwrap().is_ok());
    assert_eq!(it.next().unwrap().unwrap_err().code(), "duplicate_id");
    assert!(it.next().is_none(), "reader is exhausted after an error");

    let ds = load(&DatasetSpec::new(&path).with_allow_duplicate_ids(true)).unwrap();
    assert_eq!(ds.ids(), &["a", "b", "a"]);
}

// ---------------------------------------------------------------- CSV dialect

#[test]
fn quoting_whitespace_bom_and_tsv() {
    let (_d, path) = temp_file(
        "q.csv",
        "\u{feff}id,\"y\", x0 \r\n\"a,1\",1, 2.5\r\n\"b\"\"q\",0,\"-1e-3\"\r\n".as_bytes(),
    );
    let ds = load(&DatasetSpec::new(&path).with_label("y")).unwrap();
    assert_eq!(ds.ids(), &["a,1", "b\"q"]);
    assert_eq!(ds.labels().unwrap(), &[1.0, 0.0]);
    assert_eq!(ds.feature_names(), &["x0"]);
    assert_eq!(ds.features(), &[2.5, -0.001]);

    let (_d, path) = temp_file("t.tsv", b"id\tx0\tx1\n1\t0.5\t2\n");
    let ds = load(&DatasetSpec::new(&path)).unwrap();
    assert_eq!(ds.row(0), &[0.5, 2.0]);

    let (_d, path) = temp_file("s.txt", b"id;x0\n1;0.5\n");
    let ds = load(&DatasetSpec::new(&path).with_delimiter(';')).unwrap();
    assert_eq!(ds.features(), &[0.5]);
}

#[test]
fn crlf_line_numbers_and_blank_lines() {
    // CRLF endings, a blank CRLF line, a quoted id spanning two lines: line numbers stay
    // physical lines (csv's own CRLF mode would report them one too low).
    let (_d, path) = temp_file(
        "c.csv",
        b"id,x0,x1\r\n\r\na,1,2\r\n\"b\r\nc\",3,4\r\nd,5\r\ne,6,7\r\n",
    );
    match load_err(&DatasetSpec::new(&path)) {
        DataError::RaggedRow { at, found, .. } => {
            assert_eq!((at, found), (Location::Line(6), 2));
        }
        other => panic!("unexpected {other:?}"),
    }
    let (_d, path) = temp_file(
        "c.csv",
        b"\r\nid,x0,x1\r\n\r\na,1,2\r\n\"b\r\nc\",3,4\r\nd,5,x\r\n\r\n",
    );
    match load_err(&DatasetSpec::new(&path)) {
        DataError::NotNumeric { at, column, .. } => {
            assert_eq!((at, column), (Location::Line(7), 3));
        }
        other => panic!("unexpected {other:?}"),
    }
    let (_d, path) = temp_file("c.csv", b"id,x0\r\na,1\r\n\"b\r\nc\",3\r\n\r\n");
    let ds = load(&DatasetSpec::new(&path)).unwrap();
    assert_eq!(ds.ids(), &["a", "b\r\nc"]);
    assert_eq!(ds.features(), &[1.0, 3.0]);
}

#[test]
fn feature_selection_and_order() {
    let (_d, path) = temp_file("f.csv", b"x2,id,x0,y,x1\n9,a,1,0,2\n8,b,3,1,4\n");
    let ds = load(&DatasetSpec::new(&path).with_label("y")).unwrap();
    assert_eq!(ds.feature_names(), &["x2", "x0", "x1"]);
    assert_eq!(ds.row(1), &[8.0, 3.0, 4.0]);
    let ds = load(
        &DatasetSpec::new(&path)
            .with_label("y")
            .with_features(["x1", "x2"]),
    )
    .unwrap();
    assert_eq!(ds.feature_names(), &["x1", "x2"]);
    assert_eq!(ds.features(), &[2.0, 9.0, 4.0, 8.0]);
    assert_eq!(ds.column(1).collect::<Vec<_>>(), vec![9.0, 8.0]);
    assert_eq!(ds.feature_index("x2"), Some(1));
    let sel = ds.select_rows(&[1, 0, 1]).unwrap();
    assert_eq!(sel.ids(), &["b", "a", "b"]);
    assert_eq!(sel.labels().unwrap(), &[1.0, 0.0, 1.0]);
    assert_eq!(sel.features(), &[4.0, 8.0, 2.0, 9.0, 4.0, 8.0]);
    assert_eq!(ds.select_rows(&[2]).unwrap_err().code(), "invalid_dataset");
}

// ---------------------------------------------------------------- spec (TOML)

#[test]
fn spec_from_toml() {
    let spec: DatasetSpec = toml::from_str(
        r#"
        path = "data/guest.csv"
        label = "y"
        features = ["x0", "x1"]
        missing = { fill = 0.5 }
        delimiter = ";"
        batch_rows = 1000
        "#,
    )
    .unwrap();
    assert_eq!(
        spec,
        DatasetSpec::new("data/guest.csv")
            .with_label("y")
            .with_features(["x0", "x1"])
            .with_missing(MissingPolicy::Fill(0.5))
            .with_delimiter(';')
            .with_batch_rows(1000)
    );
    assert_eq!(spec.resolved_format().unwrap(), Format::Csv);

    let spec: DatasetSpec = toml::from_str(
        r#"
        path = "x.bin"
        format = "parquet"
        id_column = "uid"
        missing = "mean"
        allow_duplicate_ids = true
        "#,
    )
    .unwrap();
    assert_eq!(spec.resolved_format().unwrap(), Format::Parquet);
    assert_eq!(spec.missing, MissingPolicy::Mean);
    assert_eq!(spec.id_column, "uid");
    assert!(spec.allow_duplicate_ids);

    let spec: DatasetSpec = toml::from_str(r#"path = "a.csv""#).unwrap();
    assert_eq!(spec, DatasetSpec::new("a.csv"));
    assert_eq!(spec.missing, MissingPolicy::Error);
    let spec: DatasetSpec = toml::from_str("path = \"a.csv\"\nmissing = \"error\"").unwrap();
    assert_eq!(spec.missing, MissingPolicy::Error);

    let err = toml::from_str::<DatasetSpec>("path = \"a.csv\"\nlabels = \"y\"").unwrap_err();
    assert!(err.to_string().contains("unknown field `labels`"), "{err}");
}

// ---------------------------------------------------------------- real data

#[test]
fn default_credit_guest_loads_with_label_counts() {
    let Some(dir) = fate_dir() else { return };
    let path = dir.join("default_credit_hetero_guest.csv");
    let ds = load(&DatasetSpec::new(&path).with_label("y")).unwrap();
    assert_eq!(ds.n_rows(), 30_000);
    assert_eq!(ds.n_features(), 13);
    let names: Vec<String> = (0..13).map(|i| format!("x{i}")).collect();
    assert_eq!(ds.feature_names(), names.as_slice());
    assert_eq!(ds.label_name(), Some("y"));
    let labels = ds.labels().unwrap();
    let zeros = labels.iter().filter(|&&v| v == 0.0).count();
    let ones = labels.iter().filter(|&&v| v == 1.0).count();
    assert_eq!((zeros, ones), (23_364, 6_636));
    // First data line: 25115,1,-1.486041,...
    assert_eq!(ds.ids()[0], "25115");
    assert_eq!(labels[0], 1.0);
    assert_eq!(ds.row(0)[0], -1.486041);
    assert_eq!(ds.row(29_999)[12], -0.11512);
}

#[test]
fn streaming_covers_every_row_exactly_once() {
    let Some(dir) = fate_dir() else { return };
    let spec = DatasetSpec::new(dir.join("default_credit_hetero_guest.csv")).with_label("y");
    let full = load(&spec).unwrap();
    let reader = open(&spec.clone().with_batch_rows(1000)).unwrap();
    assert_eq!(reader.n_features(), 13);
    assert_eq!(reader.label_name(), Some("y"));
    let mut next = 0;
    let mut n_batches = 0;
    for batch in reader {
        let batch = batch.unwrap();
        assert_eq!(batch.first_row_index, next);
        assert!(batch.n_rows() <= 1000 && batch.n_rows() > 0);
        assert_eq!(batch.n_features, 13);
        assert_eq!(batch.features.len(), batch.n_rows() * 13);
        let end = next + batch.n_rows();
        assert_eq!(batch.ids, &full.ids()[next..end]);
        assert_eq!(
            batch.labels.as_deref().unwrap(),
            &full.labels().unwrap()[next..end]
        );
        assert_eq!(batch.features, &full.features()[next * 13..end * 13]);
        assert_eq!(batch.row(0), full.row(next));
        next = end;
        n_batches += 1;
    }
    assert_eq!(next, 30_000);
    assert_eq!(n_batches, 30);
}

#[test]
fn crlf_sample_id_file_loads() {
    let Some(dir) = fate_dir() else { return };
    let path = dir.join("breast_hetero_guest_sample_id.csv");
    let ds = load(
        &DatasetSpec::new(&path)
            .with_id_column("mock_id")
            .with_label("y"),
    )
    .unwrap();
    assert_eq!(ds.n_rows(), 2139);
    // `id` is an ordinary numeric column here.
    let mut expected = vec!["id".to_owned()];
    expected.extend((0..10).map(|i| format!("x{i}")));
    assert_eq!(ds.feature_names(), expected.as_slice());
    assert_eq!(ds.ids()[0], "20000");
    assert_eq!(ds.row(0)[0], 133.0);
    assert_eq!(ds.row(0)[10], -0.733474, "no stray \\r in the last field");
    let labels = ds.labels().unwrap();
    assert_eq!(labels.iter().filter(|&&v| v == 1.0).count(), 1362);

    // With `id` as the id column, the repeated ids are reported with both lines.
    let err = load_err(&DatasetSpec::new(&path).with_label("y"));
    match err {
        DataError::DuplicateId {
            id, first, second, ..
        } => {
            assert_eq!(id, "133");
            assert_eq!((first, second), (Location::Line(2), Location::Line(3)));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn breast_guest_and_host_load() {
    let Some(dir) = fate_dir() else { return };
    let guest =
        load(&DatasetSpec::new(dir.join("breast_hetero_guest.csv")).with_label("y")).unwrap();
    assert_eq!((guest.n_rows(), guest.n_features()), (569, 10));
    assert_eq!(
        guest
            .labels()
            .unwrap()
            .iter()
            .filter(|&&v| v == 1.0)
            .count(),
        357
    );
    let host = load(&DatasetSpec::new(dir.join("breast_hetero_host.csv"))).unwrap();
    assert_eq!((host.n_rows(), host.n_features()), (569, 20));
    assert_eq!(host.label_name(), None);
}

// ---------------------------------------------------------------- round trips

fn sample_dataset() -> Dataset {
    Dataset::new(
        "uid",
        vec!["a".into(), "b,c".into(), "\"q\"".into(), "δ".into()],
        Some(("target".into(), vec![0.0, 1.0, 1.0, 0.25])),
        vec!["f0".into(), "f1".into(), "f2".into()],
        vec![
            0.1,
            -2.0,
            1e-300,
            1.0 / 3.0,
            f64::MAX,
            -0.0,
            123456.789,
            5e-324,
            7.0,
            1e21,
            -1e-7,
            std::f64::consts::PI,
        ],
    )
    .unwrap()
}

fn reload(path: &Path, ds: &Dataset) -> Dataset {
    load(
        &DatasetSpec::new(path)
            .with_id_column(ds.id_column())
            .with_label(ds.label_name().unwrap()),
    )
    .unwrap()
}

fn assert_bit_equal(a: &Dataset, b: &Dataset) {
    assert_eq!(a.ids(), b.ids());
    assert_eq!(a.feature_names(), b.feature_names());
    assert_eq!(a.label_name(), b.label_name());
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(a.features()), bits(b.features()));
    assert_eq!(bits(a.labels().unwrap()), bits(b.labels().unwrap()));
}

#[test]
fn parquet_round_trip() {
    let ds = sample_dataset();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.parquet");
    write_parquet(&path, &ds).unwrap();
    let back = reload(&path, &ds);
    assert_eq!(back, ds);
    assert_bit_equal(&back, &ds);

    // The same through streaming with small batches.
    let spec = DatasetSpec::new(&path)
        .with_id_column("uid")
        .with_label("target")
        .with_batch_rows(3);
    let batches: Vec<_> = open(&spec).unwrap().map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].first_row_index, 3);
    assert_eq!(batches[1].ids, vec!["δ".to_owned()]);

    // An explicit format overrides the extension.
    let odd = dir.path().join("d.bin");
    std::fs::copy(&path, &odd).unwrap();
    let spec = DatasetSpec::new(&odd)
        .with_format(Format::Parquet)
        .with_id_column("uid")
        .with_label("target");
    assert_eq!(load(&spec).unwrap(), ds);
}

#[test]
fn csv_round_trip_is_exact() {
    let ds = sample_dataset();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.csv");
    write_csv(&path, &ds).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("uid,target,f0,f1,f2\na,0,0.1,-2,1e-300\n"),
        "{text}"
    );
    let back = reload(&path, &ds);
    assert_bit_equal(&back, &ds);

    // Real data: CSV -> Dataset -> Parquet -> Dataset -> CSV -> Dataset, all equal.
    let Some(fate) = fate_dir() else { return };
    let orig =
        load(&DatasetSpec::new(fate.join("breast_hetero_guest.csv")).with_label("y")).unwrap();
    let pq = dir.path().join("b.parquet");
    write_parquet(&pq, &orig).unwrap();
    let from_pq = reload(&pq, &orig);
    assert_eq!(from_pq, orig);
    let csv = dir.path().join("b.csv");
    write_csv(&csv, &from_pq).unwrap();
    assert_bit_equal(&reload(&csv, &orig), &orig);
}

/// Writes record batches with the given schema to a Parquet file.
fn write_batches(path: &Path, schema: Arc<Schema>, batches: &[Vec<ArrayRef>], rg_rows: usize) {
    let file = std::fs::File::create(path).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rg_rows))
        .build();
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    for cols in batches {
        w.write(&RecordBatch::try_new(schema.clone(), cols.clone()).unwrap())
            .unwrap();
    }
    w.close().unwrap();
}

fn nullable_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("y", DataType::Boolean, true),
        Field::new("a", DataType::Float32, true),
        Field::new("b", DataType::Float64, true),
    ]))
}

#[test]
fn parquet_with_nulls_and_mixed_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.parquet");
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![10, 11, 12, 13, 14])),
        Arc::new(BooleanArray::from(vec![true, false, true, true, false])),
        Arc::new(Float32Array::from(vec![
            Some(1.5),
            None,
            Some(2.5),
            Some(f32::NAN),
            Some(-1.0),
        ])),
        Arc::new(Float64Array::from(vec![
            Some(1.0),
            Some(2.0),
            Some(3.0),
            None,
            Some(6.0),
        ])),
    ];
    // Row groups of 2 rows: rows 0-1, 2-3, 4.
    write_batches(&path, nullable_schema(), &[cols], 2);
    let spec = DatasetSpec::new(&path).with_label("y");

    let err = load_err(&spec);
    match &err {
        DataError::MissingValue {
            at,
            column,
            column_name,
            role,
            ..
        } => {
            assert_eq!(
                *at,
                Location::Row {
                    row: 1,
                    row_group: 0
                }
            );
            assert_eq!(*column, 3);
            assert_eq!(column_name, "a");
            assert_eq!(*role, ColumnRole::Feature);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "{}: row index 1 (row group 0), column 3 (\"a\"): missing value (missing policy is `error`)",
            path.display()
        )
    );

    let ds = load(&spec.clone().with_missing(MissingPolicy::Fill(0.0))).unwrap();
    assert_eq!(ds.ids(), &["10", "11", "12", "13", "14"]);
    assert_eq!(ds.labels().unwrap(), &[1.0, 0.0, 1.0, 1.0, 0.0]);
    assert_eq!(ds.feature_names(), &["a", "b"]);
    assert_eq!(
        ds.features(),
        &[1.5, 1.0, 0.0, 2.0, 2.5, 3.0, 0.0, 0.0, -1.0, 6.0]
    );

    let ds = load(&spec.clone().with_missing(MissingPolicy::Mean)).unwrap();
    let mean_a = (1.5 + 2.5 - 1.0) / 3.0;
    let mean_b = (1.0 + 2.0 + 3.0 + 6.0) / 4.0;
    assert_eq!(
        ds.features(),
        &[1.5, 1.0, mean_a, 2.0, 2.5, 3.0, mean_a, mean_b, -1.0, 6.0]
    );
    let streamed: Vec<f64> = open(
        &spec
            .clone()
            .with_missing(MissingPolicy::Mean)
            .with_batch_rows(2),
    )
    .unwrap()
    .flat_map(|b| b.unwrap().features)
    .collect();
    assert_eq!(streamed, ds.features());

    // Row-group location of a later error: feature b is null at row 3 (row group 1).
    let err = load_err(&spec.clone().with_features(["b"]));
    assert!(matches!(
        err,
        DataError::MissingValue {
            at: Location::Row {
                row: 3,
                row_group: 1
            },
            column: 4,
            ..
        }
    ));
}

#[test]
fn parquet_null_id_label_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.parquet");
    let batch = |ids: Vec<Option<i64>>, ys: Vec<Option<bool>>| -> Vec<ArrayRef> {
        let n = ids.len();
        vec![
            Arc::new(Int64Array::from(ids)),
            Arc::new(BooleanArray::from(ys)),
            Arc::new(Float32Array::from(vec![1.0; n])),
            Arc::new(Float64Array::from(vec![2.0; n])),
        ]
    };
    write_batches(
        &path,
        nullable_schema(),
        &[batch(vec![Some(1), Some(2), None], vec![Some(true); 3])],
        100,
    );
    assert!(matches!(
        load_err(&DatasetSpec::new(&path)),
        DataError::MissingValue {
            role: ColumnRole::Id,
            at: Location::Row {
                row: 2,
                row_group: 0
            },
            column: 1,
            ..
        }
    ));
    write_batches(
        &path,
        nullable_schema(),
        &[batch(vec![Some(1), Some(2)], vec![Some(true), None])],
        100,
    );
    assert!(matches!(
        load_err(&DatasetSpec::new(&path).with_label("y")),
        DataError::MissingValue {
            role: ColumnRole::Label,
            at: Location::Row { row: 1, .. },
            column: 2,
            ..
        }
    ));
    write_batches(
        &path,
        nullable_schema(),
        &[batch(vec![Some(7), Some(8), Some(7)], vec![Some(true); 3])],
        2,
    );
    match load_err(&DatasetSpec::new(&path)) {
        DataError::DuplicateId {
            id, first, second, ..
        } => {
            assert_eq!(id, "7");
            assert_eq!(
                first,
                Location::Row {
                    row: 0,
                    row_group: 0
                }
            );
            assert_eq!(
                second,
                Location::Row {
                    row: 2,
                    row_group: 1
                }
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn parquet_unsupported_types_and_string_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("day", DataType::Date32, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("v", DataType::Float64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["k1", "k2"])),
        Arc::new(Date32Array::from(vec![1, 2])),
        Arc::new(StringArray::from(vec!["x", "y"])),
        Arc::new(Float64Array::from(vec![0.5, 1.5])),
    ];
    write_batches(&path, schema, &[cols], 100);

    let err = load_err(&DatasetSpec::new(&path).with_id_column("key"));
    match &err {
        DataError::UnsupportedColumnType {
            column,
            column_name,
            role,
            data_type,
            ..
        } => {
            assert_eq!(*column, 2);
            assert_eq!(column_name, "day");
            assert_eq!(*role, ColumnRole::Feature);
            assert_eq!(data_type, "Date32");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), "unsupported_column_type");
    let err = load_err(
        &DatasetSpec::new(&path)
            .with_id_column("key")
            .with_label("name"),
    );
    assert!(matches!(
        err,
        DataError::UnsupportedColumnType {
            role: ColumnRole::Label,
            column: 3,
            ..
        }
    ));
    // Only the selected columns matter.
    let ds = load(
        &DatasetSpec::new(&path)
            .with_id_column("key")
            .with_features(["v"]),
    )
    .unwrap();
    assert_eq!(ds.ids(), &["k1", "k2"]);
    assert_eq!(ds.features(), &[0.5, 1.5]);
    // An empty string id is missing, as in CSV.
    let empty = dir.path().join("e.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("v", DataType::Float64, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["k1", ""])),
        Arc::new(Float64Array::from(vec![0.5, 1.5])),
    ];
    write_batches(&empty, schema, &[cols], 100);
    assert!(matches!(
        load_err(&DatasetSpec::new(&empty)),
        DataError::MissingValue {
            role: ColumnRole::Id,
            at: Location::Row {
                row: 1,
                row_group: 0
            },
            ..
        }
    ));
    // Unknown id column lists the schema.
    match load_err(&DatasetSpec::new(&path)) {
        DataError::ColumnNotFound { available, .. } => {
            assert_eq!(available, vec!["key", "day", "name", "v"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn corrupt_parquet_file_is_reported() {
    let (_d, path) = temp_file("bad.parquet", b"this is not parquet at all");
    let err = load_err(&DatasetSpec::new(&path));
    assert_eq!(err.code(), "parquet");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: Parquet error (reading metadata): ",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn large_parquet_streams_across_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let n = 10_000usize;
    let ids: Vec<String> = (0..n).map(|i| format!("id{i}")).collect();
    let features: Vec<f64> = (0..n * 2).map(|k| k as f64 * 0.5).collect();
    let ds = Dataset::new("id", ids, None, vec!["p".into(), "q".into()], features).unwrap();
    write_parquet(&path, &ds).unwrap();
    let mut seen = 0;
    for batch in open(&DatasetSpec::new(&path).with_batch_rows(999)).unwrap() {
        let b = batch.unwrap();
        assert_eq!(b.first_row_index, seen);
        assert_eq!(b.ids[0], format!("id{seen}"));
        assert_eq!(b.row(0), ds.row(seen));
        seen += b.n_rows();
    }
    assert_eq!(seen, n);
}

#[test]
fn readers_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<fedra_data::BatchReader>();
    assert_send::<Dataset>();
    assert_send::<DataError>();
}

#[test]
fn dataset_new_checks_shapes() {
    let err = Dataset::new("id", vec!["a".into()], None, vec!["x".into()], vec![]).unwrap_err();
    assert_eq!(err.code(), "invalid_dataset");
    assert!(
        Dataset::new(
            "id",
            vec!["a".into()],
            Some(("y".into(), vec![])),
            vec![],
            vec![]
        )
        .is_err()
    );
    assert!(Dataset::new("id", vec!["a".into()], None, vec!["id".into()], vec![1.0]).is_err());
    let ds = Dataset::new("id", vec!["a".into()], None, vec![], vec![]).unwrap();
    assert_eq!((ds.n_rows(), ds.n_features()), (1, 0));
}

#[test]
fn categorical_columns_row_ids_and_blank_numbers() {
    let (_d, path) = temp_file(
        "c.txt",
        b"label,I1,I2,C1,C2\n0,,3,05db9164,\n1,2.5,,68fd1e64,NA\n0,1,1,,a73ee510\n",
    );
    let spec = DatasetSpec::new(&path)
        .with_label("label")
        .with_categorical(["C1", "C2"])
        .with_row_ids(true)
        .with_missing(MissingPolicy::Fill(0.0));
    let d = load(&spec).unwrap();
    assert_eq!(d.ids(), ["0", "1", "2"]);
    assert_eq!(d.feature_names(), ["I1", "I2"]);
    assert_eq!(d.features(), [0.0, 3.0, 2.5, 0.0, 1.0, 1.0]);
    assert_eq!(d.categorical_names(), ["C1", "C2"]);
    assert_eq!(d.categorical_row(0), ["05db9164", ""]);
    assert_eq!(d.categorical_row(1), ["68fd1e64", ""]);
    assert_eq!(d.categorical_row(2), ["", "a73ee510"]);
    // Rows keep their categories, and CSV round-trips them.
    let sel = d.select_rows(&[2, 0]).unwrap();
    assert_eq!(sel.categorical_row(0), ["", "a73ee510"]);
    let out = path.with_file_name("out.csv");
    write_csv(&out, &d).unwrap();
    let back = load(
        &DatasetSpec::new(&out)
            .with_label("label")
            .with_categorical(["C1", "C2"]),
    )
    .unwrap();
    assert_eq!(back.categorical_row(2), d.categorical_row(2));
    assert_eq!(back.features(), d.features());
    // Without `categorical`, the hex column is a feature that is not a number: the
    // error names the line and the column.
    let e = load_err(
        &DatasetSpec::new(&path)
            .with_label("label")
            .with_row_ids(true)
            .with_missing(MissingPolicy::Fill(0.0)),
    );
    assert_eq!(e.code(), "not_numeric");
    let msg = e.to_string();
    assert!(msg.contains("line 2, column 4 (\"C1\")"), "{msg}");
    // A categorical column that is not in the file, and one listed twice.
    let e = load_err(
        &DatasetSpec::new(&path)
            .with_row_ids(true)
            .with_categorical(["C9"]),
    );
    assert_eq!(e.code(), "column_not_found");
    let e = load_err(&DatasetSpec::new(&path).with_categorical(["C1", "C1"]));
    assert_eq!(e.code(), "invalid_spec");
}

#[test]
fn criteo_sample_reads_with_categorical_fields() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/ctr/criteo_sample.txt");
    let cats: Vec<String> = (1..=26).map(|i| format!("C{i}")).collect();
    let d = load(
        &DatasetSpec::new(&path)
            .with_label("label")
            .with_row_ids(true)
            .with_categorical(cats)
            .with_missing(MissingPolicy::Fill(0.0)),
    )
    .unwrap();
    assert_eq!(d.n_rows(), 200);
    assert_eq!(d.n_features(), 13);
    assert_eq!(d.n_categorical(), 26);
    assert_eq!(d.categorical_row(0)[0], "05db9164");
}
