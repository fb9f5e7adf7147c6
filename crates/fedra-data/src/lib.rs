//! Loading a party's dataset for Fedra: CSV (also gzipped, `.csv.gz`) and Parquet files,
//! read whole ([`load`]) or streamed in bounded batches ([`open`]), with precise,
//! structured errors ([`DataError`]).
//!
//! A dataset file has one id column (kept as strings, for private set intersection),
//! optionally one numeric label column, and numeric feature columns. What to read is
//! described by a [`DatasetSpec`], usually deserialized from the party's TOML
//! configuration (see [`spec`] for the shape). Missing feature values (empty, `NA`, `NaN`,
//! `null`, case-insensitive; Parquet nulls and NaNs) are handled by a [`MissingPolicy`].
//! Every error names the file and, where it applies, the line (CSV, header = line 1) or
//! row and row group (Parquet), the 1-based column index and the column name.
//!
//! ```no_run
//! use fedra_data::{DatasetSpec, MissingPolicy, load, open, write_parquet};
//!
//! # fn main() -> Result<(), fedra_data::DataError> {
//! let spec = DatasetSpec::new("breast_hetero_guest.csv")
//!     .with_label("y")
//!     .with_missing(MissingPolicy::Fill(0.0));
//!
//! // Everything in memory:
//! let data = load(&spec)?;
//! println!("{} rows × {} features", data.n_rows(), data.n_features());
//! let first = data.row(0);
//! let x0: Vec<f64> = data.column(0).collect();
//! # let _ = (first, x0);
//! write_parquet("breast_hetero_guest.parquet", &data)?;
//!
//! // Or streamed, 1000 rows at a time:
//! for batch in open(&spec.with_batch_rows(1000))? {
//!     let batch = batch?;
//!     println!("rows {}..{}", batch.first_row_index, batch.first_row_index + batch.n_rows());
//! }
//! # Ok(())
//! # }
//! ```

pub mod batch;
pub mod csv_io;
pub mod dataset;
pub mod error;
pub mod parquet_io;
pub mod spec;

pub use batch::{Batch, BatchReader, open};
pub use csv_io::write_csv;
pub use dataset::{Dataset, load};
pub use error::{ColumnRole, DataError, Location, Result};
pub use parquet_io::write_parquet;
pub use spec::{DEFAULT_BATCH_ROWS, DatasetSpec, Format, MissingPolicy};
