//! Row-major matrix plumbing: concatenating the parties' cut outputs
//! column-wise, splitting the top model's input gradient back into parts,
//! and gathering a batch's labels.

/// Concatenates row-major parts column-wise.
pub(crate) fn concat(parts: &[(&[f32], usize)], rows: usize) -> Vec<f32> {
    let total: usize = parts.iter().map(|p| p.1).sum();
    let mut out = Vec::with_capacity(rows * total);
    for r in 0..rows {
        for (v, w) in parts {
            out.extend_from_slice(&v[r * w..(r + 1) * w]);
        }
    }
    out
}

/// Splits a row-major matrix column-wise into parts of the given widths.
pub(crate) fn split_cols(v: &[f32], widths: &[usize], rows: usize) -> Vec<Vec<f32>> {
    let total: usize = widths.iter().sum();
    let mut out: Vec<Vec<f32>> = widths
        .iter()
        .map(|w| Vec::with_capacity(rows * w))
        .collect();
    for r in 0..rows {
        let mut c = r * total;
        for (o, w) in out.iter_mut().zip(widths) {
            o.extend_from_slice(&v[c..c + w]);
            c += w;
        }
    }
    out
}

pub(crate) fn gather_labels(y: &[f32], batch: &[usize], w: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(batch.len() * w);
    for &i in batch {
        out.extend_from_slice(&y[i * w..(i + 1) * w]);
    }
    out
}
