//! `fedra bench he`: operations per second of `fedra-he`'s Paillier and
//! Okamoto–Uchiyama implementations, one JSON object per line on stdout
//! (`{"bench":"he","impl":"fedra","scheme":"paillier","bits":2048,
//! "threads":1,"op":"encrypt","ops_per_s":...,"n":...,"wall_s":...}`).
//!
//! Every measurement runs inside a rayon pool of exactly `threads` threads
//! and uses the library's batch APIs where they exist (`encrypt_batch`,
//! `encrypt_batch_crt`, `decrypt_batch`, `add_batch`, `mul_plain_batch`,
//! `rerandomize_batch`), a parallel iterator otherwise. A batch size is
//! calibrated first (those runs double as warm-up and are not counted),
//! then the same prepared inputs are run in batches until `--seconds` of
//! wall time have passed; `ops_per_s` is operations over that wall time
//! (all threads together, so the per-core figure is `ops_per_s / threads`),
//! and `ops_per_cpu_s` is operations over the CPU time the whole process
//! used meanwhile (less distorted by other load on a shared machine; idle
//! pool threads cost nothing).
//!
//! Operations (plaintexts and scalars are uniform random signed 64-bit
//! integers, drawn once per batch; ciphertext inputs cycle through 64
//! fresh encryptions of such plaintexts):
//!
//! * `keygen`: `generate_keypair` alone (fixed-base tables are built lazily
//!   on first use); `keygen_tables`: key generation plus the public-key
//!   fixed-base tables and the secret-key CRT tables.
//! * `encrypt`: public-key encryption (fixed-base tables);
//!   `encrypt_crt`: the key holder's CRT encryption (same ciphertexts).
//! * `decrypt`.
//! * `add`: ciphertext + ciphertext on serialised ciphertexts;
//!   `add_acc`: the accumulator API protocols use for sums
//!   (`acc_add`, one Montgomery multiplication).
//! * `add_plain`: ciphertext + public plaintext.
//! * `scalar_mul`: ciphertext × signed 64-bit scalar (`mul_plain`).
//! * `rerandomize`.
//!
//! All randomness comes from `ChaCha20Rng`s seeded from the OS and passed
//! into the library. Before timing, a few results of every operation are
//! decrypted and checked.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use fedra_he::{
    AdditiveScheme, HeError, HePublicKey, HeSecretKey, OkamotoUchiyama, Paillier, Plaintext,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;
use serde_json::json;

/// Distinct ciphertexts that the evaluation benchmarks cycle through.
const POOL: usize = 64;

/// All operations, in output order.
const ALL_OPS: &[&str] = &[
    "keygen",
    "keygen_tables",
    "encrypt",
    "encrypt_crt",
    "decrypt",
    "add",
    "add_acc",
    "add_plain",
    "scalar_mul",
    "rerandomize",
];

/// A scheme of `fedra-he`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HeScheme {
    /// Paillier (DJN fixed-base randomisers, CRT decryption).
    Paillier,
    /// Okamoto–Uchiyama (n = p²q).
    Ou,
}

/// Options of `fedra bench he`.
#[derive(clap::Args, Debug)]
pub struct HeArgs {
    /// Modulus sizes in bits.
    #[arg(long, value_delimiter = ',', default_values_t = vec![2048u32, 3072])]
    bits: Vec<u32>,
    /// Schemes.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = vec![HeScheme::Paillier, HeScheme::Ou])]
    schemes: Vec<HeScheme>,
    /// Thread counts (a rayon pool of exactly this many threads each).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2])]
    threads: Vec<usize>,
    /// Wall time per measurement, in seconds (after calibration/warm-up).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Only these operations (default: all of keygen, keygen_tables, encrypt,
    /// encrypt_crt, decrypt, add, add_acc, add_plain, scalar_mul, rerandomize).
    #[arg(long, value_delimiter = ',')]
    ops: Vec<String>,
    /// Minimum number of key generations per keygen measurement (per thread).
    #[arg(long, default_value_t = 3)]
    keygen_min: usize,
}

/// Scheme-specific table building (inherent methods of the key types).
trait Tables: AdditiveScheme {
    /// JSON name of the scheme.
    const LABEL: &'static str;
    /// Builds the public fixed-base tables and the secret CRT tables.
    fn build_tables(pk: &Self::PublicKey, sk: &Self::SecretKey) -> Result<(), HeError>;
}

impl Tables for Paillier {
    const LABEL: &'static str = "paillier";
    fn build_tables(pk: &Self::PublicKey, sk: &Self::SecretKey) -> Result<(), HeError> {
        pk.precompute()?;
        sk.precompute_crt()
    }
}

impl Tables for OkamotoUchiyama {
    const LABEL: &'static str = "ou";
    fn build_tables(pk: &Self::PublicKey, sk: &Self::SecretKey) -> Result<(), HeError> {
        pk.precompute()?;
        sk.precompute_crt()
    }
}

/// One measurement: `n` operations in `wall_s` seconds of wall time and
/// `cpu_s` seconds of CPU time of the whole process (all threads).
struct Sample {
    n: usize,
    wall_s: f64,
    cpu_s: Option<f64>,
}

/// Calibrates a batch size so that one batch takes about a tenth of the
/// budget (warm-up, not counted), then runs batches on the same input
/// until `seconds` have passed. `run` returns the operations it did.
fn measure<I>(
    seconds: f64,
    start: usize,
    mut prep: impl FnMut(usize) -> Result<I>,
    mut run: impl FnMut(&I) -> Result<usize>,
) -> Result<Sample> {
    let target = (seconds / 10.0).max(0.02);
    let mut size = start.max(1);
    let input = loop {
        let input = prep(size)?;
        let t0 = Instant::now();
        run(&input)?;
        let t = t0.elapsed().as_secs_f64();
        if t >= target || size >= 1 << 22 {
            break input;
        }
        let grow = if t > 0.0 { target / t * 1.2 } else { 16.0 };
        size = (size as f64 * grow.clamp(2.0, 16.0)).ceil() as usize;
    };
    let (mut n, mut wall_s) = (0usize, 0.0f64);
    let c0 = process_cpu_s();
    while wall_s < seconds {
        let t0 = Instant::now();
        n += run(&input)?;
        wall_s += t0.elapsed().as_secs_f64();
    }
    Ok(Sample {
        n,
        wall_s,
        cpu_s: process_cpu_s().zip(c0).map(|(b, a)| b - a),
    })
}

/// CPU time of this process so far (sum over its threads of
/// `/proc/self/task/*/schedstat`, nanosecond resolution; Linux only).
fn process_cpu_s() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

fn random_plaintexts(rng: &mut ChaCha20Rng, count: usize) -> Vec<Plaintext> {
    (0..count)
        .map(|_| Plaintext::from_i64(rng.next_u64() as i64))
        .collect()
}

fn cycle<T: Clone>(pool: &[T], count: usize, offset: usize) -> Vec<T> {
    (0..count)
        .filter_map(|i| pool.get((i + offset) % pool.len()).cloned())
        .collect()
}

fn emit(scheme: &str, bits: u32, threads: usize, op: &str, s: &Sample) {
    println!(
        "{}",
        json!({
            "bench": "he",
            "impl": "fedra",
            "scheme": scheme,
            "bits": bits,
            "threads": threads,
            "op": op,
            "ops_per_s": s.n as f64 / s.wall_s,
            "n": s.n,
            "wall_s": s.wall_s,
            "cpu_s": s.cpu_s,
            "ops_per_cpu_s": s.cpu_s.filter(|&c| c > 0.0).map(|c| s.n as f64 / c),
        })
    );
}

/// Decrypts a few results of every operation and checks them.
fn self_check<S: Tables>(
    pk: &S::PublicKey,
    sk: &S::SecretKey,
    rng: &mut ChaCha20Rng,
) -> Result<()> {
    let a = rng.next_u64() as i64;
    let b = rng.next_u64() as i64;
    let dec = |c: &S::Ciphertext| -> Result<i128> {
        sk.decrypt(c)?
            .to_i128()
            .context("decrypted value out of range")
    };
    let ca = pk.encrypt(&Plaintext::from_i64(a), rng)?;
    let cb = sk.encrypt_crt(&Plaintext::from_i64(b), rng)?;
    ensure!(dec(&ca)? == i128::from(a), "encrypt/decrypt mismatch");
    ensure!(dec(&cb)? == i128::from(b), "encrypt_crt/decrypt mismatch");
    let sum = i128::from(a) + i128::from(b);
    ensure!(dec(&pk.add(&ca, &cb)?)? == sum, "add mismatch");
    let mut acc = pk.acc_prepare(&ca);
    pk.acc_add(&mut acc, &pk.acc_prepare(&cb));
    ensure!(dec(&pk.acc_finish(&acc))? == sum, "add_acc mismatch");
    ensure!(
        dec(&pk.add_plain(&ca, &Plaintext::from_i64(b))?)? == sum,
        "add_plain mismatch"
    );
    ensure!(
        dec(&pk.mul_plain(&ca, &Plaintext::from_i64(b))?)? == i128::from(a) * i128::from(b),
        "scalar_mul mismatch"
    );
    let r = pk.rerandomize(&ca, rng)?;
    ensure!(r != ca && dec(&r)? == i128::from(a), "rerandomize mismatch");
    Ok(())
}

fn keygen_sample<S: Tables>(
    args: &HeArgs,
    bits: u32,
    threads: usize,
    tables: bool,
    pool: &rayon::ThreadPool,
    rng: &mut ChaCha20Rng,
) -> Result<Sample> {
    let (mut n, mut wall_s) = (0usize, 0.0f64);
    let c0 = process_cpu_s();
    let min_n = args.keygen_min.max(1) * threads;
    while wall_s < args.seconds || n < min_n {
        let seeds: Vec<[u8; 32]> = (0..threads)
            .map(|_| {
                let mut s = [0u8; 32];
                rng.fill_bytes(&mut s);
                s
            })
            .collect();
        let t0 = Instant::now();
        pool.install(|| {
            seeds.par_iter().try_for_each(|seed| -> Result<()> {
                let mut r = ChaCha20Rng::from_seed(*seed);
                let (pk, sk) = S::generate_keypair(bits, &mut r)?;
                if tables {
                    S::build_tables(&pk, &sk)?;
                }
                black_box((pk, sk));
                Ok(())
            })
        })?;
        wall_s += t0.elapsed().as_secs_f64();
        n += threads;
    }
    Ok(Sample {
        n,
        wall_s,
        cpu_s: process_cpu_s().zip(c0).map(|(b, a)| b - a),
    })
}

fn bench_scheme<S: Tables>(args: &HeArgs, bits: u32) -> Result<()> {
    let wants = |op: &str| args.ops.is_empty() || args.ops.iter().any(|o| o == op);
    let mut rng = ChaCha20Rng::from_os_rng();
    let mut data = ChaCha20Rng::from_os_rng();
    let (pk, sk) = S::generate_keypair(bits, &mut rng)
        .with_context(|| format!("{} key generation at {bits} bits", S::LABEL))?;
    S::build_tables(&pk, &sk)?;
    self_check::<S>(&pk, &sk, &mut rng)?;
    let ms = random_plaintexts(&mut data, POOL);
    let cts = sk.encrypt_batch_crt(&ms, &mut rng)?;
    let accs = pk.acc_prepare_batch(&cts);
    for &threads in &args.threads {
        ensure!(threads > 0, "--threads must be positive");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .context("building the rayon pool")?;
        let start = 2 * threads;
        for &op in ALL_OPS {
            if !wants(op) {
                continue;
            }
            let s = match op {
                "keygen" => keygen_sample::<S>(args, bits, threads, false, &pool, &mut rng)?,
                "keygen_tables" => keygen_sample::<S>(args, bits, threads, true, &pool, &mut rng)?,
                "encrypt" => measure(
                    args.seconds,
                    start,
                    |k| Ok(random_plaintexts(&mut data, k)),
                    |m| Ok(pool.install(|| pk.encrypt_batch(m, &mut rng))?.len()),
                )?,
                "encrypt_crt" => measure(
                    args.seconds,
                    start,
                    |k| Ok(random_plaintexts(&mut data, k)),
                    |m| Ok(pool.install(|| sk.encrypt_batch_crt(m, &mut rng))?.len()),
                )?,
                "decrypt" => measure(
                    args.seconds,
                    start,
                    |k| Ok(cycle(&cts, k, 0)),
                    |c| Ok(pool.install(|| sk.decrypt_batch(c))?.len()),
                )?,
                "add" => measure(
                    args.seconds,
                    start,
                    |k| Ok((cycle(&cts, k, 0), cycle(&cts, k, 1))),
                    |(a, b)| Ok(pool.install(|| pk.add_batch(a, b))?.len()),
                )?,
                "add_acc" => measure(args.seconds, start, Ok, |&k| {
                    pool.install(|| {
                        (0..k)
                            .into_par_iter()
                            .fold(
                                || pk.acc_zero(),
                                |mut acc, i| {
                                    if let Some(x) = accs.get(i % POOL) {
                                        pk.acc_add(&mut acc, x);
                                    }
                                    acc
                                },
                            )
                            .for_each(|acc| {
                                black_box(acc);
                            })
                    });
                    Ok(k)
                })?,
                "add_plain" => measure(
                    args.seconds,
                    start,
                    |k| Ok((cycle(&cts, k, 0), random_plaintexts(&mut data, k))),
                    |(a, m)| {
                        let out = pool.install(|| {
                            a.par_iter()
                                .zip(m.par_iter())
                                .map(|(c, p)| pk.add_plain(c, p))
                                .collect::<Result<Vec<_>, HeError>>()
                        })?;
                        Ok(out.len())
                    },
                )?,
                "scalar_mul" => measure(
                    args.seconds,
                    start,
                    |k| Ok((cycle(&cts, k, 0), random_plaintexts(&mut data, k))),
                    |(a, s)| Ok(pool.install(|| pk.mul_plain_batch(a, s))?.len()),
                )?,
                "rerandomize" => measure(
                    args.seconds,
                    start,
                    |k| Ok(cycle(&cts, k, 0)),
                    |c| Ok(pool.install(|| pk.rerandomize_batch(c, &mut rng))?.len()),
                )?,
                other => anyhow::bail!("unknown operation {other}"),
            };
            emit(S::LABEL, bits, threads, op, &s);
        }
    }
    Ok(())
}

/// Runs `fedra bench he`.
pub fn run(args: &HeArgs) -> Result<()> {
    for op in &args.ops {
        ensure!(
            ALL_OPS.contains(&op.as_str()),
            "unknown operation {op} (known: {})",
            ALL_OPS.join(", ")
        );
    }
    ensure!(args.seconds > 0.0, "--seconds must be positive");
    for &scheme in &args.schemes {
        for &bits in &args.bits {
            match scheme {
                HeScheme::Paillier => bench_scheme::<Paillier>(args, bits)?,
                HeScheme::Ou => bench_scheme::<OkamotoUchiyama>(args, bits)?,
            }
        }
    }
    Ok(())
}
