//! ECDH-PSI between two in-memory parties in one process, for N ids per side with
//! 50% overlap; prints one JSON line.
//!
//! `cargo run --release -p fedra-psi --example psi_bench -- [N=100000] [buckets=1]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use fedra_federation::PartyId;
use fedra_federation::mem::MemNetwork;
use fedra_psi::{EcdhConfig, Role, ecdh_psi};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100_000, |s| s.parse().unwrap());
    let buckets: u32 = args.next().map_or(1, |s| s.parse().unwrap());
    let common = n / 2;
    let xs: Vec<String> = (0..n).map(|i| format!("id-{i:012}")).collect();
    let ys: Vec<String> = (0..n)
        .map(|i| format!("id-{:012}", i + (n - common)))
        .collect();
    let (a, b) = (
        PartyId::new("guest").unwrap(),
        PartyId::new("host").unwrap(),
    );
    let mut net = MemNetwork::new("bench", &[a.clone(), b.clone()]);
    let (ca, cb) = (net.take(&a).unwrap(), net.take(&b).unwrap());
    let cfg = EcdhConfig::new("psi").with_buckets(buckets);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let (mut ra, mut rb) = (ChaCha20Rng::from_os_rng(), ChaCha20Rng::from_os_rng());
    let start = Instant::now();
    let (ra, rb) = rt.block_on(async {
        tokio::join!(
            ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut ra),
            ecdh_psi(&cb, &a, Role::Follower, &cfg, &ys, &mut rb),
        )
    });
    let wall = start.elapsed().as_secs_f64();
    let ((ia, sa), (ib, sb)) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ia.size, common);
    assert_eq!(ib.size, common);
    let curve_ops = sa.curve_ops + sb.curve_ops;
    println!(
        "{{\"name\":\"psi_ecdh\",\"ids_per_side\":{n},\"buckets\":{buckets},\"wall_s\":{wall:.3},\"points_per_s\":{:.0},\"curve_ops_per_s\":{:.0},\"bytes_per_party\":{},\"intersection\":{}}}",
        (sa.points_sent + sb.points_sent) as f64 / wall,
        curve_ops as f64 / wall,
        sa.bytes_sent.max(sb.bytes_sent),
        ia.size
    );
}
