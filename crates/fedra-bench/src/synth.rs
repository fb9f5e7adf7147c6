//! `fedra gen criteo`: synthetic Criteo-shaped data for split learning at scale.
//!
//! Row `i` (a pure function of the seed and `i`, so any prefix of a larger run is
//! the same data): 13 dense features `I1..I13` (standard-normal-like, at the
//! leader with the 0/1 label) and 26 categorical fields `C1..C26` (at the
//! follower), each an id in `0..10^6` drawn log-uniformly (`⌊V^u⌋ − 1`, a Zipf-like
//! head: id `k` has probability ≈ `1/((k+1)·ln V)`), written as 8 hex digits of a
//! per-field hash like Criteo's. The label is Bernoulli(sigmoid(z)) with `z` a
//! function of **both** parties' features: a linear part and one interaction of
//! the dense features, plus a per-(field, id) effect in ±0.4 — so a split model
//! can learn from each side and a one-sided one cannot reach the joint AUC.

use std::io::Write;
use std::path::Path;

use fedra_splitnn::mix64;

/// Dense features per row.
pub const DENSE: usize = 13;
/// Categorical fields per row.
pub const FIELDS: usize = 26;

/// The generator.
#[derive(Debug, Clone, Copy)]
pub struct Criteo {
    /// Seed of everything.
    pub seed: u64,
    /// Ids per field.
    pub vocab: u64,
}

/// One generated row.
pub struct Row {
    /// The 0/1 label (the leader's).
    pub label: f32,
    /// Dense features `I1..I13` (the leader's).
    pub dense: [f32; DENSE],
    /// Raw ids per field (`0..vocab`).
    pub ids: [u64; FIELDS],
}

fn unit(x: u64) -> f64 {
    // 53 random bits in (0, 1].
    ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

impl Criteo {
    /// Row `i`.
    pub fn row(&self, i: u64) -> Row {
        let base = mix64(self.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut dense = [0f32; DENSE];
        for (j, d) in dense.iter_mut().enumerate() {
            // Sum of 3 uniforms, centred and scaled: unit variance, light tails.
            let s: f64 = (0..3)
                .map(|k| unit(mix64(base ^ ((j * 3 + k) as u64 + 1) << 32)))
                .sum();
            *d = ((s - 1.5) * 2.0) as f32;
        }
        let ln_v = (self.vocab as f64).ln();
        let mut ids = [0u64; FIELDS];
        let mut z = 0.8 * f64::from(dense[0]) - 0.6 * f64::from(dense[1])
            + 0.5 * f64::from(dense[2]) * f64::from(dense[3])
            - 1.3;
        for (f, id) in ids.iter_mut().enumerate() {
            let u = unit(mix64(base ^ (1000 + f as u64) << 20));
            let k = ((u * ln_v).exp().floor() as u64).saturating_sub(1);
            *id = k.min(self.vocab - 1);
            z += self.effect(f, *id);
        }
        let p = 1.0 / (1.0 + (-z).exp());
        let label = if unit(mix64(base ^ 0xC0FF_EE00)) <= p {
            1.0
        } else {
            0.0
        };
        Row { label, dense, ids }
    }

    /// The label effect of id `id` in field `f`, in ±0.4.
    fn effect(&self, f: usize, id: u64) -> f64 {
        let h = mix64(self.seed ^ ((f as u64) << 40) ^ id ^ 0x5EED);
        ((h % 2001) as f64 / 1000.0 - 1.0) * 0.4
    }

    /// The category text of id `id` in field `f` (8 hex digits, as in Criteo).
    pub fn text(&self, f: usize, id: u64) -> String {
        format!(
            "{:08x}",
            mix64(((f as u64 + 1) << 48) ^ id ^ self.seed) as u32
        )
    }
}

/// Writes `leader.csv` (`id,label,I1..I13`) and `follower.csv` (`id,C1..C26`); ids are
/// `r` and the zero-padded row number, so their text order is the row order.
pub fn write(dir: &Path, rows: u64, synth: Criteo) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut l = std::io::BufWriter::new(std::fs::File::create(dir.join("leader.csv"))?);
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("follower.csv"))?);
    write!(l, "id,label")?;
    for j in 1..=DENSE {
        write!(l, ",I{j}")?;
    }
    writeln!(l)?;
    write!(f, "id")?;
    for j in 1..=FIELDS {
        write!(f, ",C{j}")?;
    }
    writeln!(f)?;
    for i in 0..rows {
        let r = synth.row(i);
        write!(l, "r{i:010},{}", r.label)?;
        for d in r.dense {
            write!(l, ",{d}")?;
        }
        writeln!(l)?;
        write!(f, "r{i:010}")?;
        for (k, id) in r.ids.iter().enumerate() {
            write!(f, ",{}", synth.text(k, *id))?;
        }
        writeln!(f)?;
    }
    l.flush()?;
    f.flush()?;
    Ok(())
}
