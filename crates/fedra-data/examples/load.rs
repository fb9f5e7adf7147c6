//! Loads a dataset file and prints load throughput as one JSON line.
//!
//! Usage: `cargo run --release --example load -- <path> [label_column] [id_column]`
//! (label defaults to `y` if the file has such a column; id to `id`).

use std::time::Instant;

use fedra_data::{DatasetSpec, load, open};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: load <path> [label_column] [id_column]")?;
    let label = args.next().unwrap_or_else(|| "y".to_owned());
    let id = args.next().unwrap_or_else(|| "id".to_owned());
    let mut spec = DatasetSpec::new(&path).with_id_column(id).with_label(label);
    // Fall back to no label if the file has no such column.
    if let Err(fedra_data::DataError::ColumnNotFound { .. }) = open(&spec) {
        spec.label = None;
    }
    let bytes = std::fs::metadata(&path)?.len();
    // Warm the page cache, then time the best of 5 loads.
    let mut best = f64::INFINITY;
    let mut shape = (0, 0);
    for _ in 0..6 {
        let t = Instant::now();
        let ds = load(&spec)?;
        let secs = t.elapsed().as_secs_f64();
        best = best.min(secs);
        shape = (ds.n_rows(), ds.n_features());
    }
    println!(
        "{{\"path\":{:?},\"rows\":{},\"features\":{},\"bytes\":{},\"seconds\":{:.6},\"rows_per_s\":{:.0},\"mb_per_s\":{:.1}}}",
        path,
        shape.0,
        shape.1,
        bytes,
        best,
        shape.0 as f64 / best,
        bytes as f64 / best / 1e6
    );
    Ok(())
}
