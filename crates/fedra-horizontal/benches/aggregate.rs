//! Criterion benchmarks of the aggregation rules (placeholder).

fn main() {}
