//! Benchmarks for fedra-dp (filled in below).

fn main() {}
