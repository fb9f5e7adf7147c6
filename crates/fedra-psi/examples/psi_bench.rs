//! PSI between two in-memory parties in one process, for N ids per side with 50%
//! overlap; prints one JSON line. For ECDH it also prints the curve-operation floor
//! of this machine, measured as `fedra bench psi` does (single-core cost of 20k
//! `ecdh::blind` and 20k `ecdh::reblind` calls; floor = 2·N·(t_blind + t_reblind) /
//! cores, both parties' curve work spread over every core) and the ratio of the
//! wall time to it.
//!
//! The machine is shared, so wall times depend on the load. From the kernel's
//! per-thread scheduler statistics (`/proc/self/task/*/schedstat`: time running and
//! time runnable but waiting for a core) it also prints load-independent figures:
//! `cpu_ratio` (CPU seconds of the run / the floor's CPU seconds, the latter also
//! measured as thread run time), `stall_s` (core-seconds no thread of ours wanted:
//! pipeline bubbles, `cores·wall − run − wait`) and `idle_ratio_est`, the ratio
//! expected on an idle machine, `(run + stall) / cores / floor`.
//!
//! * ECDH-PSI: `cargo run --release -p fedra-psi --example psi_bench -- [N=100000] [buckets=1] [shared]`
//!   (each party on its own executor and rayon pool, like two processes; `shared`:
//!   both on one runtime and one rayon pool)
//! * RSA-PSI (2048-bit, no cache): `... --example psi_bench -- rsa [N=10000]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use curve25519_dalek::Scalar;
use fedra_federation::PartyId;
use fedra_federation::mem::{MemChannel, MemNetwork};
use fedra_psi::{
    EcdhConfig, Role, RsaConfig, RsaPsiKey, ecdh_psi, rsa_psi_client, rsa_psi_key_holder,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn sets(n: usize) -> (Vec<String>, Vec<String>, usize) {
    let common = n / 2;
    let xs = (0..n).map(|i| format!("id-{i:012}")).collect();
    let ys = (0..n)
        .map(|i| format!("id-{:012}", i + (n - common)))
        .collect();
    (xs, ys, common)
}

/// (running, waiting) seconds from a `schedstat` file.
fn schedstat(path: &std::path::Path) -> (f64, f64) {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let mut f = s
        .split_whitespace()
        .map(|x| x.parse::<f64>().unwrap_or(0.0) / 1e9);
    (f.next().unwrap_or(0.0), f.next().unwrap_or(0.0))
}

/// (running, waiting) seconds summed over every thread of this process.
fn process_sched() -> (f64, f64) {
    let mut total = (0.0, 0.0);
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let (r, w) = schedstat(&t.path().join("schedstat"));
        total.0 += r;
        total.1 += w;
    }
    total
}

/// Single-core seconds per (hash + scalar mult + encode) and per (decode + mult +
/// encode), exactly as `fedra bench psi` measures them (wall time), and the same
/// as thread run time (load-independent).
fn curve_costs() -> ((f64, f64), (f64, f64)) {
    let me = std::path::Path::new("/proc/thread-self/schedstat");
    let s = Scalar::from_bytes_mod_order([7u8; 32]);
    let n = 20_000u32;
    let (c0, t0) = (schedstat(me).0, Instant::now());
    let mut enc = Vec::with_capacity(n as usize);
    for i in 0..n {
        enc.push(fedra_psi::ecdh::blind(
            "bench",
            "psi",
            format!("u{i}").as_bytes(),
            &s,
        ));
    }
    let hash = t0.elapsed().as_secs_f64() / f64::from(n);
    let (c1, t1) = (schedstat(me).0, Instant::now());
    for e in &enc {
        let _ = std::hint::black_box(fedra_psi::ecdh::reblind(e, &s));
    }
    let mult = t1.elapsed().as_secs_f64() / f64::from(n);
    let c2 = schedstat(me).0;
    (
        (hash, mult),
        ((c1 - c0) / f64::from(n), (c2 - c1) / f64::from(n)),
    )
}

/// Runs `f` on a fresh single-thread executor on a thread of `pool`, so the rayon
/// work `f` offloads stays in that pool.
fn own_pool<F: std::future::Future + Send>(pool: &rayon::ThreadPool, f: F) -> F::Output
where
    F::Output: Send,
{
    pool.install(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    })
}

fn net() -> (MemChannel, MemChannel, PartyId, PartyId) {
    let (a, b) = (
        PartyId::new("guest").unwrap(),
        PartyId::new("host").unwrap(),
    );
    let mut net = MemNetwork::new("bench", &[a.clone(), b.clone()]);
    (net.take(&a).unwrap(), net.take(&b).unwrap(), a, b)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (mut ra, mut rb) = (ChaCha20Rng::from_os_rng(), ChaCha20Rng::from_os_rng());
    let (ca, cb, a, b) = net();
    if args.first().map(String::as_str) == Some("rsa") {
        let n: usize = args.get(1).map_or(10_000, |s| s.parse().unwrap());
        let (xs, ys, common) = sets(n);
        let key = RsaPsiKey::generate(2048).unwrap();
        let cfg = RsaConfig::new("psi");
        let start = Instant::now();
        let (rh, rc) = rt.block_on(async {
            tokio::join!(
                rsa_psi_key_holder(&ca, &b, &cfg, &key, &xs, None),
                rsa_psi_client(&cb, &a, &cfg, &ys, &mut rb),
            )
        });
        let wall = start.elapsed().as_secs_f64();
        let ((ih, sh), (ic, sc)) = (rh.unwrap(), rc.unwrap());
        assert_eq!((ih.size, ic.size), (common, common));
        println!(
            "{{\"name\":\"psi_rsa2048\",\"ids_per_side\":{n},\"wall_s\":{wall:.3},\"private_ops_per_s\":{:.0},\"bytes_key_holder\":{},\"bytes_client\":{}}}",
            sh.rsa_private_ops as f64 / wall,
            sh.bytes_sent,
            sc.bytes_sent
        );
        return;
    }
    let n: usize = args.first().map_or(100_000, |s| s.parse().unwrap());
    let buckets: u32 = args.get(1).map_or(1, |s| s.parse().unwrap());
    let shared = args.get(2).map(String::as_str) == Some("shared");
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let ((hash, mult), (hash_cpu, mult_cpu)) = curve_costs();
    let floor = 2.0 * n as f64 * (hash + mult) / cores;
    let floor_cpu = 2.0 * n as f64 * (hash_cpu + mult_cpu);
    let (xs, ys, common) = sets(n);
    let cfg = EcdhConfig::new("psi").with_buckets(buckets);
    // Per-party pools (kept alive until the scheduler statistics are read).
    let pools: Vec<rayon::ThreadPool> = (0..2)
        .map(|_| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(cores as usize + 1)
                .build()
                .unwrap()
        })
        .collect();
    let sched0 = process_sched();
    let start = Instant::now();
    let (ra, rb) = if shared {
        rt.block_on(async {
            tokio::join!(
                ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut ra),
                ecdh_psi(&cb, &a, Role::Follower, &cfg, &ys, &mut rb),
            )
        })
    } else {
        // Like two processes: each party has its own rayon pool with one thread per
        // core (plus the thread that drives its future) and its own executor.
        let fa = ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut ra);
        let fb = ecdh_psi(&cb, &a, Role::Follower, &cfg, &ys, &mut rb);
        let (pa, pb) = (&pools[0], &pools[1]);
        std::thread::scope(|s| {
            let ha = s.spawn(move || own_pool(pa, fa));
            let hb = s.spawn(move || own_pool(pb, fb));
            (ha.join().unwrap(), hb.join().unwrap())
        })
    };
    let wall = start.elapsed().as_secs_f64();
    let sched1 = process_sched();
    let (run, wait) = (sched1.0 - sched0.0, sched1.1 - sched0.1);
    let stall = (cores * wall - run - wait).max(0.0);
    let ((ia, sa), (ib, sb)) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ia.size, ib.size), (common, common));
    println!(
        "{{\"name\":\"psi_ecdh\",\"ids_per_side\":{n},\"buckets\":{buckets},\"pools\":\"{}\",\"wall_s\":{wall:.3},\"points_per_s\":{:.0},\"curve_ops_per_s\":{:.0},\"bytes_per_party\":{},\"hash_blind_per_s_core\":{:.0},\"reblind_per_s_core\":{:.0},\"cores\":{cores},\"curve_floor_s\":{floor:.3},\"ratio_to_floor\":{:.3},\"cpu_s\":{run:.3},\"wait_s\":{wait:.3},\"stall_s\":{stall:.3},\"cpu_ratio\":{:.3},\"idle_ratio_est\":{:.3}}}",
        if shared { "shared" } else { "per_party" },
        (sa.points_sent + sb.points_sent) as f64 / wall,
        (sa.curve_ops + sb.curve_ops) as f64 / wall,
        sa.bytes_sent.max(sb.bytes_sent),
        1.0 / hash,
        1.0 / mult,
        wall / floor,
        run / floor_cpu,
        (run + stall) / floor_cpu,
    );
}
