//! Loads a dataset file (CSV or Parquet, by extension) and prints load throughput as one
//! JSON line: the best of 5 timed loads after one warm-up load.
//!
//! Usage: `cargo run --release --example load -- <path> [--label y] [--id id]
//! [--write-parquet OUT]`. The label defaults to `y` when the file has such a column.
//! `--write-parquet` also writes the loaded dataset to `OUT` (to time Parquet loading next).

use std::time::Instant;

use fedra_data::{DataError, DatasetSpec, load, open, write_parquet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: load <path> [--label NAME] [--id NAME] [--write-parquet OUT]";
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or(usage)?;
    let (mut label, mut id, mut out) = (None, "id".to_owned(), None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(usage)?;
        match flag.as_str() {
            "--label" => label = Some(value),
            "--id" => id = value,
            "--write-parquet" => out = Some(value),
            _ => return Err(usage.into()),
        }
    }
    let mut spec = DatasetSpec::new(&path).with_id_column(id);
    spec.label = label.clone().or_else(|| Some("y".to_owned()));
    if label.is_none() && matches!(open(&spec), Err(DataError::ColumnNotFound { .. })) {
        spec.label = None;
    }
    let bytes = std::fs::metadata(&path)?.len();
    let mut best = f64::INFINITY;
    let mut last = load(&spec)?;
    for _ in 0..5 {
        let t = Instant::now();
        last = load(&spec)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    if let Some(out) = out {
        write_parquet(out, &last)?;
    }
    println!(
        "{{\"path\":{:?},\"rows\":{},\"features\":{},\"bytes\":{},\"seconds\":{:.6},\"rows_per_s\":{:.0},\"mb_per_s\":{:.1}}}",
        path,
        last.n_rows(),
        last.n_features(),
        bytes,
        best,
        last.n_rows() as f64 / best,
        bytes as f64 / best / 1e6
    );
    Ok(())
}
