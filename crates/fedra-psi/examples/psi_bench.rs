//! PSI between two in-memory parties in one process, for N ids per side with 50%
//! overlap; prints one JSON line.
//!
//! * ECDH-PSI: `cargo run --release -p fedra-psi --example psi_bench -- [N=100000] [buckets=1]`
//! * RSA-PSI (2048-bit, no cache): `... --example psi_bench -- rsa [N=10000]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

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
    let (xs, ys, common) = sets(n);
    let cfg = EcdhConfig::new("psi").with_buckets(buckets);
    let start = Instant::now();
    let (ra, rb) = rt.block_on(async {
        tokio::join!(
            ecdh_psi(&ca, &b, Role::Leader, &cfg, &xs, &mut ra),
            ecdh_psi(&cb, &a, Role::Follower, &cfg, &ys, &mut rb),
        )
    });
    let wall = start.elapsed().as_secs_f64();
    let ((ia, sa), (ib, sb)) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ia.size, ib.size), (common, common));
    println!(
        "{{\"name\":\"psi_ecdh\",\"ids_per_side\":{n},\"buckets\":{buckets},\"wall_s\":{wall:.3},\"points_per_s\":{:.0},\"curve_ops_per_s\":{:.0},\"bytes_per_party\":{}}}",
        (sa.points_sent + sb.points_sent) as f64 / wall,
        (sa.curve_ops + sb.curve_ops) as f64 / wall,
        sa.bytes_sent.max(sb.bytes_sent),
    );
}
