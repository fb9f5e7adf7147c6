//! Secure hetero LR on default_credit (24,000 training rows of 30,000; guest
//! 13 features + labels, host 10 features), guest and host in memory
//! (MemNetwork), no arbiter by default (or a third, arbiter party), real
//! 2048-bit keys. Prints one JSON line.
//!
//! ```text
//! cargo run --release -p fedra-linear --example lr_bench -- [epochs] [paillier|ou] [batch_size] [no_arbiter|arbiter] [linearized|taylor]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use fedra_data::{DatasetSpec, load};
use fedra_federation::{PartyId, mem::MemNetwork};
use fedra_linear::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let epochs: u32 = args.get(1).map_or(1, |s| s.parse().expect("epochs"));
    let scheme = match args.get(2).map_or("paillier", String::as_str) {
        "ou" => Scheme::Ou,
        _ => Scheme::Paillier,
    };
    let batch: usize = args.get(3).map_or(1024, |s| s.parse().expect("batch size"));
    let with_arbiter = args.get(4).is_some_and(|s| s == "arbiter");
    let sigmoid = match args.get(5).map_or("linearized", String::as_str) {
        "taylor" => Sigmoid::Taylor,
        _ => Sigmoid::Linearized,
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fate");
    let g = load(&DatasetSpec::new(dir.join("default_credit_hetero_guest.csv")).with_label("y"))
        .unwrap();
    let h = load(&DatasetSpec::new(
        dir.join("default_credit_hetero_host.csv"),
    ))
    .unwrap();
    // The same stratified split as tests/linear.rs.
    let ids: Vec<u64> = g.ids().iter().map(|s| s.parse().unwrap()).collect();
    let y = g.labels().unwrap();
    let key = |i: usize| (ids[i].wrapping_mul(2654435761).wrapping_add(42)) % (1 << 32);
    let mut test = vec![false; ids.len()];
    for class in [0.0, 1.0] {
        let mut idx: Vec<usize> = (0..ids.len()).filter(|&i| y[i] == class).collect();
        idx.sort_by_key(|&i| (key(i), ids[i]));
        let k = (idx.len() as f64 * 0.2).round() as usize;
        idx[..k].iter().for_each(|&i| test[i] = true);
    }
    let tr: Vec<usize> = (0..ids.len()).filter(|&i| !test[i]).collect();
    let te: Vec<usize> = (0..ids.len()).filter(|&i| test[i]).collect();
    let (gtr, htr) = (g.select_rows(&tr).unwrap(), h.select_rows(&tr).unwrap());
    let (gte, hte) = (g.select_rows(&te).unwrap(), h.select_rows(&te).unwrap());

    let (guest, host) = (
        PartyId::new("guest").unwrap(),
        PartyId::new("host").unwrap(),
    );
    let arbiter = PartyId::new("arbiter").unwrap();
    let mode = if with_arbiter {
        Mode::WithArbiter {
            arbiter: arbiter.clone(),
        }
    } else {
        Mode::NoArbiter
    };
    let mut cfg = Config::new(guest.clone(), vec![host.clone()], Objective::Logistic, mode);
    cfg.max_epochs = epochs;
    cfg.batch_size = batch;
    cfg.scheme = scheme;
    cfg.sigmoid = sigmoid;
    cfg.shuffle_seed = Some(42);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let start = Instant::now();
    let (gm, hm) = rt.block_on(async {
        let mut net = MemNetwork::new("bench", &cfg.parties());
        let (gch, hch) = (net.take(&guest).unwrap(), net.take(&host).unwrap());
        let at = if with_arbiter {
            let ach = net.take(&arbiter).unwrap();
            let c = cfg.clone();
            Some(tokio::spawn(async move {
                train_arbiter(&ach, &c, &mut ChaCha20Rng::from_os_rng()).await
            }))
        } else {
            None
        };
        let (c1, c2) = (cfg.clone(), cfg.clone());
        let gt = tokio::spawn(async move {
            train_guest(&gch, &c1, &gtr, &mut ChaCha20Rng::from_os_rng()).await
        });
        let ht = tokio::spawn(async move {
            train_host(&hch, &c2, &htr, &mut ChaCha20Rng::from_os_rng()).await
        });
        let out = (gt.await.unwrap().unwrap(), ht.await.unwrap().unwrap());
        if let Some(a) = at {
            a.await.unwrap().unwrap();
        }
        out
    });
    let secs = start.elapsed().as_secs_f64();
    let epochs_run = gm.loss_history.len();
    let mut u = gm.partial_scores(&gte).unwrap();
    for (a, b) in u.iter_mut().zip(hm.partial_scores(&hte).unwrap()) {
        *a += b;
    }
    let auc = fedra_metrics::roc_auc(gte.labels().unwrap(), &u).unwrap();
    println!(
        "{{\"name\":\"hetero_lr\",\"scheme\":\"{}\",\"mode\":\"{}\",\"sigmoid\":\"{:?}\",\"rows\":{},\"batch_size\":{},\"epochs\":{},\"epoch_s\":{:.2},\"total_s\":{:.2},\"auc\":{:.5}}}",
        match scheme {
            Scheme::Paillier => "paillier-2048",
            Scheme::Ou => "ou-2048",
        },
        if with_arbiter {
            "arbiter"
        } else {
            "no_arbiter"
        },
        sigmoid,
        tr.len(),
        batch,
        epochs_run,
        secs / epochs_run as f64,
        secs,
        auc
    );
}
