//! The training and prediction protocols, one async function per role.

use fedra_data::Dataset;
use fedra_federation::{Channel, FedError, PartyId, Tag};
use fedra_he::{AdditiveScheme, HePublicKey, HeSecretKey, OkamotoUchiyama, Paillier, Plaintext};
use rand_core::{CryptoRng, RngCore, SeedableRng};

use crate::config::{Config, Mode, Scheme};
use crate::core::{self, Alpha, Encoded, Stopper};
use crate::error::{LinearError, Result, he};
use crate::model::{GuestModel, HostModel};
use crate::pack;
use crate::wire;

fn tag(cfg: &Config, round: u64, name: &str) -> Tag {
    Tag::new(&cfg.task, round, name)
}

fn role_err(field: &'static str, me: &PartyId, what: &str) -> LinearError {
    LinearError::Config {
        field,
        reason: format!("this party is '{me}', which is not {what}"),
    }
}

fn random_masks<R: CryptoRng + ?Sized>(rng: &mut R, k: usize) -> Vec<i128> {
    // Uniform in [0, 2^126): hides values below ~2^80 statistically
    // (distance < 2^-46) and keeps every masked sum inside an i128.
    (0..k)
        .map(|_| {
            let v = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            (v >> 2) as i128
        })
        .collect()
}

fn encrypt_i128<K: HePublicKey, R: CryptoRng + ?Sized>(
    pk: &K,
    v: &[i128],
    rng: &mut R,
) -> Result<Vec<K::Ciphertext>> {
    let ms: Vec<Plaintext> = v.iter().map(|&x| Plaintext::from_i128(x)).collect();
    pk.encrypt_batch(&ms, rng).map_err(he("encrypt"))
}

/// Encryption by the owner of the key: CRT with the secret key (the same
/// ciphertext distribution as [`encrypt_i128`], several times faster).
fn encrypt_i128_owner<SK: HeSecretKey, R: CryptoRng + ?Sized>(
    sk: &SK,
    v: &[i128],
    rng: &mut R,
) -> Result<Vec<SK::Ciphertext>> {
    let ms: Vec<Plaintext> = v.iter().map(|&x| Plaintext::from_i128(x)).collect();
    sk.encrypt_batch_crt(&ms, rng).map_err(he("encrypt"))
}

/// Decrypts and decodes each value with `decode` (`None`: out of range).
fn decrypt_with<SK: HeSecretKey>(
    sk: &SK,
    cts: &[SK::Ciphertext],
    from: &PartyId,
    t: &Tag,
    decode: impl Fn(&Plaintext) -> Option<i128>,
) -> Result<Vec<i128>> {
    sk.decrypt_batch(cts)
        .map_err(he("decrypt"))?
        .iter()
        .enumerate()
        .map(|(i, p)| {
            decode(p).ok_or_else(|| {
                FedError::malformed(
                    from,
                    t,
                    format!("decrypted value {i} is outside the masked range"),
                )
                .into()
            })
        })
        .collect()
}

fn decrypt_i128<SK: HeSecretKey>(
    sk: &SK,
    cts: &[SK::Ciphertext],
    from: &PartyId,
    t: &Tag,
) -> Result<Vec<i128>> {
    decrypt_with(sk, cts, from, t, Plaintext::to_i128)
}

fn unmask(v: &[i128], m: &[i128], from: &PartyId, t: &Tag) -> Result<Vec<i128>> {
    v.iter()
        .zip(m)
        .map(|(v, m)| {
            v.checked_sub(*m)
                .ok_or_else(|| FedError::malformed(from, t, "masked value out of range").into())
        })
        .collect()
}

/// A batch's rows as a row-major scalar matrix with one extra column.
fn gather_with(enc: &Encoded, rows: &[usize], extra: &[i64]) -> Vec<i64> {
    let mut out = Vec::with_capacity(rows.len() * (enc.cols + 1));
    for (&i, &e) in rows.iter().zip(extra) {
        out.extend_from_slice(&enc.x[i * enc.cols..(i + 1) * enc.cols]);
        out.push(e);
    }
    out
}

/// Row `i` of a row-major `k.len() × width` matrix times `k[i]`, refusing
/// overflow.
fn scale_rows(m: &[i64], width: usize, k: &[i64]) -> Result<Vec<i64>> {
    m.chunks(width.max(1))
        .zip(k)
        .flat_map(|(row, &ki)| {
            row.iter()
                .map(move |&x| x.checked_mul(ki).ok_or_else(core::overflow))
        })
        .collect()
}

/// Encoded partial scores as i64 (they are scalars of inner products).
fn encoded_scores(enc: &Encoded, rows: &[usize], w: &[f64], f: u32) -> Result<Vec<i64>> {
    enc.scores(rows, w, f)
        .iter()
        .map(|&u| core::encode(u, f))
        .collect()
}

fn widen(v: &[i64]) -> Vec<i128> {
    v.iter().map(|&x| i128::from(x)).collect()
}

struct GuestData {
    enc: Encoded,
    y: Vec<f64>,
    intercept: Option<usize>,
}

fn prepare_guest(cfg: &Config, data: &Dataset) -> Result<GuestData> {
    let labels = data
        .labels()
        .ok_or_else(|| LinearError::Data("the guest's dataset has no label column".into()))?;
    if data.n_rows() == 0 {
        return Err(LinearError::Data("the guest's dataset has no rows".into()));
    }
    let y = core::prepare_labels(cfg.objective, labels)?;
    let scaling = cfg.standardize.then(|| core::fit_scaling(data));
    let enc = core::encode_dataset(data, scaling, cfg.fit_intercept, cfg.precision_bits)?;
    let intercept = cfg.fit_intercept.then_some(enc.cols - 1);
    Ok(GuestData { enc, y, intercept })
}

fn prepare_host(cfg: &Config, data: &Dataset) -> Result<Encoded> {
    if data.n_rows() == 0 {
        return Err(LinearError::Data("the host's dataset has no rows".into()));
    }
    let scaling = cfg.standardize.then(|| core::fit_scaling(data));
    core::encode_dataset(data, scaling, false, cfg.precision_bits)
}

fn check_rows(me: usize, other: usize, who: &PartyId) -> Result<()> {
    if me != other {
        return Err(LinearError::Data(format!(
            "party '{who}' has {other} rows but this party has {me}; the rows must be aligned"
        )));
    }
    Ok(())
}

fn guest_model(
    cfg: &Config,
    data: &Dataset,
    g: &GuestData,
    w: Vec<f64>,
    history: Vec<f64>,
    stopped: bool,
) -> GuestModel {
    let mut weights = w;
    let intercept = match g.intercept {
        Some(j) if j < weights.len() => weights.remove(j),
        _ => 0.0,
    };
    GuestModel {
        objective: cfg.objective,
        feature_names: data.feature_names().to_vec(),
        weights,
        intercept,
        scaling: g.enc.scaling.clone(),
        hosts: cfg.hosts.clone(),
        loss_history: history,
        stopped_early: stopped,
    }
}

/// Trains as the guest (label holder). Returns the guest's model, with the
/// per-epoch training loss.
pub async fn train_guest<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    cfg: &Config,
    data: &Dataset,
    rng: &mut R,
) -> Result<GuestModel> {
    cfg.validate()?;
    if *ch.me() != cfg.guest {
        return Err(role_err("guest", ch.me(), "the guest"));
    }
    match cfg.scheme {
        Scheme::Paillier => guest::<Paillier, R>(ch, cfg, data, rng).await,
        Scheme::Ou => guest::<OkamotoUchiyama, R>(ch, cfg, data, rng).await,
    }
}

/// Trains as a host (features only). Returns the host's model.
pub async fn train_host<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    cfg: &Config,
    data: &Dataset,
    rng: &mut R,
) -> Result<HostModel> {
    cfg.validate()?;
    if !cfg.hosts.contains(ch.me()) {
        return Err(role_err("hosts", ch.me(), "one of the hosts"));
    }
    match cfg.scheme {
        Scheme::Paillier => host::<Paillier, R>(ch, cfg, data, rng).await,
        Scheme::Ou => host::<OkamotoUchiyama, R>(ch, cfg, data, rng).await,
    }
}

/// Runs the arbiter (key owner) of [`Mode::WithArbiter`]. Returns the
/// per-epoch training loss it decrypted.
pub async fn train_arbiter<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    cfg: &Config,
    rng: &mut R,
) -> Result<Vec<f64>> {
    cfg.validate()?;
    match &cfg.mode {
        Mode::WithArbiter { arbiter } if arbiter == ch.me() => {}
        _ => {
            return Err(role_err(
                "mode.with_arbiter.arbiter",
                ch.me(),
                "the arbiter",
            ));
        }
    }
    match cfg.scheme {
        Scheme::Paillier => arbiter::<Paillier, R>(ch, cfg, rng).await,
        Scheme::Ou => arbiter::<OkamotoUchiyama, R>(ch, cfg, rng).await,
    }
}

async fn guest<S: AdditiveScheme, R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    cfg: &Config,
    data: &Dataset,
    rng: &mut R,
) -> Result<GuestModel> {
    let g = prepare_guest(cfg, data)?;
    let (n, cols, f) = (g.enc.rows, g.enc.cols, cfg.precision_bits);
    let meta = tag(cfg, 0, "meta");
    let arbiter = match &cfg.mode {
        Mode::WithArbiter { arbiter } => Some(arbiter.clone()),
        Mode::NoArbiter => None,
    };
    for p in cfg.hosts.iter().chain(arbiter.iter()) {
        ch.send(p, &meta, wire::enc_meta(n, cols)).await?;
    }
    let mut host_cols = Vec::new();
    for h in &cfg.hosts {
        let (rows, c) = wire::dec_meta(h, &meta, &ch.recv(h, &meta).await?)?;
        check_rows(n, rows, h)?;
        host_cols.push(c);
    }
    let mut w = vec![0.0; cols];
    let mut history = Vec::new();
    let mut stopped = false;
    let mut stopper = Stopper::new();
    let mut round = 0u64;
    let pk_tag = tag(cfg, 0, "pk");

    match arbiter {
        Some(arbiter) => {
            let pk: S::PublicKey = wire::recv_pk(ch, &arbiter, &pk_tag, cfg).await?;
            for epoch in 0..cfg.max_epochs {
                for rows in core::batches(n, cfg.batch_size, cfg.shuffle_seed, epoch) {
                    round += 1;
                    let bl = rows.len();
                    let u_g = g.enc.scores(&rows, &w, f);
                    let co = core::coefficients(cfg, &rows, &g.y, &u_g)?;
                    let t_u = tag(cfg, round, "u");
                    let mut u_sum: Option<Vec<_>> = None;
                    for h in &cfg.hosts {
                        let cts = wire::dec_cts(&pk, h, &t_u, &ch.recv(h, &t_u).await?, bl)?;
                        u_sum = Some(match u_sum {
                            None => cts,
                            Some(s) => pk.add_batch(&s, &cts).map_err(he("add"))?,
                        });
                    }
                    let u_sum = u_sum.ok_or_else(|| LinearError::Config {
                        field: "hosts",
                        reason: "no host".into(),
                    })?;
                    // [[D]] = Enc(B) · [[U]]^A: the fresh encryption
                    // re-randomises the product.
                    let a: Vec<Plaintext> = (0..bl)
                        .map(|k| Plaintext::from_i64(co.alpha_at(k)))
                        .collect();
                    let au = pk.mul_plain_batch(&u_sum, &a).map_err(he("mul"))?;
                    let eb = encrypt_i128(&pk, &widen(&co.beta), rng)?;
                    let d = pk.add_batch(&eb, &au).map_err(he("add"))?;
                    let t_d = tag(cfg, round, "d");
                    let d_bytes = wire::enc_cts(&pk, &d);
                    for h in &cfg.hosts {
                        ch.send(h, &t_d, d_bytes.clone()).await?;
                    }
                    let xb = g.enc.gather(&rows);
                    let gc = pk.dot_columns(&d, &xb, cols).map_err(he("dot"))?;
                    let masks = random_masks(rng, cols);
                    let masked = pk
                        .add_batch(&gc, &encrypt_i128(&pk, &masks, rng)?)
                        .map_err(he("add"))?;
                    let t_gm = tag(cfg, round, "g_masked");
                    ch.send(&arbiter, &t_gm, wire::enc_cts(&pk, &masked))
                        .await?;
                    // Σ B·U; the hosts add their Σ U_h·D.
                    let bu = pk.dot(&u_sum, &co.beta).map_err(he("dot"))?;
                    let t_gp = tag(cfg, round, "g_plain");
                    let v =
                        wire::dec_i128(&arbiter, &t_gp, &ch.recv(&arbiter, &t_gp).await?, cols)?;
                    let grad = unmask(&v, &masks, &arbiter, &t_gp)?;
                    let local = co.ell + core::batch_penalty(cfg, &w, bl, g.intercept);
                    core::step(cfg, epoch, &mut w, &grad, bl, g.intercept);
                    let mut l = encrypt_i128(&pk, &[core::loss_fixed(local, f)?], rng)?;
                    l = pk
                        .add_batch(&l, std::slice::from_ref(&bu))
                        .map_err(he("add"))?;
                    let t_s = tag(cfg, round, "s");
                    for h in &cfg.hosts {
                        let s = wire::dec_cts(&pk, h, &t_s, &ch.recv(h, &t_s).await?, 1)?;
                        l = pk.add_batch(&l, &s).map_err(he("add"))?;
                    }
                    ch.send(&arbiter, &tag(cfg, round, "loss"), wire::enc_cts(&pk, &l))
                        .await?;
                }
                let t_e = tag(cfg, round, "epoch_end");
                let (stop, l) =
                    wire::dec_epoch_end(&arbiter, &t_e, &ch.recv(&arbiter, &t_e).await?)?;
                history.push(l);
                if stop {
                    stopped = true;
                    break;
                }
            }
        }
        None => {
            let host = cfg.hosts.first().ok_or_else(|| LinearError::Config {
                field: "hosts",
                reason: "no host".into(),
            })?;
            let hcols = host_cols.first().copied().unwrap_or(0);
            let (pk_g, sk_g) = S::generate_keypair_with_policy(cfg.key_policy, cfg.key_bits, rng)
                .map_err(he("keygen"))?;
            ch.send(host, &pk_tag, pk_g.to_bytes().into()).await?;
            let pk_h: S::PublicKey = wire::recv_pk(ch, host, &pk_tag, cfg).await?;
            for epoch in 0..cfg.max_epochs {
                let mut epoch_loss = 0.0;
                for rows in core::batches(n, cfg.batch_size, cfg.shuffle_seed, epoch) {
                    round += 1;
                    let bl = rows.len();
                    let u_g = g.enc.scores(&rows, &w, f);
                    let co = core::coefficients(cfg, &rows, &g.y, &u_g)?;
                    // [[B]] (or, per-row α, [[B + 2^192·A]]) under the guest's key.
                    let d_cts = match &co.alpha {
                        Alpha::Const(_) => encrypt_i128_owner(&sk_g, &widen(&co.beta), rng)?,
                        Alpha::PerRow(a) => {
                            let ms: Vec<Plaintext> = co
                                .beta
                                .iter()
                                .zip(a)
                                .map(|(&b, &a)| pack::pack(b, a))
                                .collect();
                            sk_g.encrypt_batch_crt(&ms, rng).map_err(he("encrypt"))?
                        }
                    };
                    ch.send(host, &tag(cfg, round, "d"), wire::enc_cts(&pk_g, &d_cts))
                        .await?;
                    // Received only now, so that the host's encryption of U_h
                    // overlaps with ours.
                    let t_ue = tag(cfg, round, "u_enc");
                    let ue = wire::dec_cts(&pk_h, host, &t_ue, &ch.recv(host, &t_ue).await?, bl)?;
                    // Xᵀ_g (A∘U_h) under the host's key, masked.
                    let gc = match &co.alpha {
                        Alpha::Const(a) => {
                            let c = pk_h
                                .dot_columns(&ue, &g.enc.gather(&rows), cols)
                                .map_err(he("dot"))?;
                            let k = vec![Plaintext::from_i64(*a); cols];
                            pk_h.mul_plain_batch(&c, &k).map_err(he("mul"))?
                        }
                        Alpha::PerRow(a) => {
                            let scal = scale_rows(&g.enc.gather(&rows), cols, a)?;
                            pk_h.dot_columns(&ue, &scal, cols).map_err(he("dot"))?
                        }
                    };
                    let masks = random_masks(rng, cols);
                    let masked = pk_h
                        .add_batch(&gc, &encrypt_i128(&pk_h, &masks, rng)?)
                        .map_err(he("add"))?;
                    ch.send(
                        host,
                        &tag(cfg, round, "g_masked"),
                        wire::enc_cts(&pk_h, &masked),
                    )
                    .await?;
                    // Decrypt the host's masked gradient for it; the last
                    // entry is its share of the batch loss.
                    let t_hm = tag(cfg, round, "hg_masked");
                    let hm =
                        wire::dec_cts(&pk_g, host, &t_hm, &ch.recv(host, &t_hm).await?, hcols + 1)?;
                    let mut hv = if core::alpha_per_row(cfg) {
                        decrypt_with(&sk_g, &hm, host, &t_hm, pack::middle_slot)?
                    } else {
                        decrypt_i128(&sk_g, &hm, host, &t_hm)?
                    };
                    let host_loss = hv.pop().unwrap_or(0);
                    ch.send(host, &tag(cfg, round, "hg_plain"), wire::enc_i128(&hv))
                        .await?;
                    let t_gp = tag(cfg, round, "g_plain");
                    let v = wire::dec_i128(host, &t_gp, &ch.recv(host, &t_gp).await?, cols)?;
                    let cross = unmask(&v, &masks, host, &t_gp)?;
                    let mut grad = g.enc.xt_dot(&rows, &widen(&co.beta));
                    for (gj, c) in grad.iter_mut().zip(&cross) {
                        *gj = gj.checked_add(*c).ok_or_else(|| {
                            FedError::malformed(host, &t_gp, "gradient out of range")
                        })?;
                    }
                    let local = co.ell + core::batch_penalty(cfg, &w, bl, g.intercept);
                    core::step(cfg, epoch, &mut w, &grad, bl, g.intercept);
                    let l = core::loss_fixed(local, f)?
                        .checked_add(host_loss)
                        .ok_or_else(|| FedError::malformed(host, &t_hm, "loss out of range"))?;
                    epoch_loss += l as f64 / core::loss_scale(f);
                }
                let l = epoch_loss / n as f64;
                history.push(l);
                let stop = stopper.update(cfg, l);
                ch.send(
                    host,
                    &tag(cfg, round, "epoch_end"),
                    wire::enc_epoch_end(stop, f64::NAN),
                )
                .await?;
                if stop {
                    stopped = true;
                    break;
                }
            }
        }
    }
    Ok(guest_model(cfg, data, &g, w, history, stopped))
}

async fn host<S: AdditiveScheme, R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    cfg: &Config,
    data: &Dataset,
    rng: &mut R,
) -> Result<HostModel> {
    let enc = prepare_host(cfg, data)?;
    let (n, cols, f) = (enc.rows, enc.cols, cfg.precision_bits);
    let guest = &cfg.guest;
    let meta = tag(cfg, 0, "meta");
    let arbiter = match &cfg.mode {
        Mode::WithArbiter { arbiter } => Some(arbiter.clone()),
        Mode::NoArbiter => None,
    };
    for p in std::iter::once(guest).chain(arbiter.iter()) {
        ch.send(p, &meta, wire::enc_meta(n, cols)).await?;
    }
    let (grows, gcols) = wire::dec_meta(guest, &meta, &ch.recv(guest, &meta).await?)?;
    check_rows(n, grows, guest)?;
    let mut w = vec![0.0; cols];
    let mut round = 0u64;
    let pk_tag = tag(cfg, 0, "pk");
    match arbiter {
        Some(arbiter) => {
            let pk: S::PublicKey = wire::recv_pk(ch, &arbiter, &pk_tag, cfg).await?;
            'epochs: for epoch in 0..cfg.max_epochs {
                for rows in core::batches(n, cfg.batch_size, cfg.shuffle_seed, epoch) {
                    round += 1;
                    let bl = rows.len();
                    let u = encoded_scores(&enc, &rows, &w, f)?;
                    let u_cts = encrypt_i128(&pk, &widen(&u), rng)?;
                    ch.send(guest, &tag(cfg, round, "u"), wire::enc_cts(&pk, &u_cts))
                        .await?;
                    let t_d = tag(cfg, round, "d");
                    let d = wire::dec_cts(&pk, guest, &t_d, &ch.recv(guest, &t_d).await?, bl)?;
                    // Xᵀ_h D and, in the last column, Σ U_h·D (this host's
                    // share of the loss's cross terms).
                    let mut gc = pk
                        .dot_columns(&d, &gather_with(&enc, &rows, &u), cols + 1)
                        .map_err(he("dot"))?;
                    let loss_ct = gc.pop().ok_or_else(core::overflow)?;
                    let masks = random_masks(rng, cols);
                    let masked = pk
                        .add_batch(&gc, &encrypt_i128(&pk, &masks, rng)?)
                        .map_err(he("add"))?;
                    ch.send(
                        &arbiter,
                        &tag(cfg, round, "g_masked"),
                        wire::enc_cts(&pk, &masked),
                    )
                    .await?;
                    let t_gp = tag(cfg, round, "g_plain");
                    let v =
                        wire::dec_i128(&arbiter, &t_gp, &ch.recv(&arbiter, &t_gp).await?, cols)?;
                    let grad = unmask(&v, &masks, &arbiter, &t_gp)?;
                    let pen = core::batch_penalty(cfg, &w, bl, None);
                    core::step(cfg, epoch, &mut w, &grad, bl, None);
                    // The fresh encryption re-randomises the inner product.
                    let s = pk
                        .add_batch(
                            &[loss_ct],
                            &encrypt_i128(&pk, &[core::loss_fixed(pen, f)?], rng)?,
                        )
                        .map_err(he("add"))?;
                    ch.send(guest, &tag(cfg, round, "s"), wire::enc_cts(&pk, &s))
                        .await?;
                }
                let t_e = tag(cfg, round, "epoch_end");
                let (stop, _) =
                    wire::dec_epoch_end(&arbiter, &t_e, &ch.recv(&arbiter, &t_e).await?)?;
                if stop {
                    break 'epochs;
                }
            }
        }
        None => {
            let (pk_h, sk_h) = S::generate_keypair_with_policy(cfg.key_policy, cfg.key_bits, rng)
                .map_err(he("keygen"))?;
            ch.send(guest, &pk_tag, pk_h.to_bytes().into()).await?;
            let pk_g: S::PublicKey = wire::recv_pk(ch, guest, &pk_tag, cfg).await?;
            let per_row = core::alpha_per_row(cfg);
            // Three-slot values need `pack::CAPACITY_BITS`.
            if per_row && pk_g.plaintext_capacity_bits() < pack::CAPACITY_BITS {
                return Err(LinearError::Config {
                    field: "key_bits",
                    reason: format!(
                        "the linearised sigmoid needs plaintexts of at least {} bits, this key has {}",
                        pack::CAPACITY_BITS,
                        pk_g.plaintext_capacity_bits()
                    ),
                });
            }
            let const_alpha = core::const_alpha(cfg)?;
            'epochs2: for epoch in 0..cfg.max_epochs {
                for rows in core::batches(n, cfg.batch_size, cfg.shuffle_seed, epoch) {
                    round += 1;
                    let bl = rows.len();
                    let u = encoded_scores(&enc, &rows, &w, f)?;
                    let u_cts = encrypt_i128_owner(&sk_h, &widen(&u), rng)?;
                    ch.send(
                        guest,
                        &tag(cfg, round, "u_enc"),
                        wire::enc_cts(&pk_h, &u_cts),
                    )
                    .await?;
                    let t_d = tag(cfg, round, "d");
                    let d = wire::dec_cts(&pk_g, guest, &t_d, &ch.recv(guest, &t_d).await?, bl)?;
                    // Xᵀ_h D = Xᵀ_h B + Xᵀ_h (A∘U_h) and, in the last column,
                    // Σ 2·U·B + A·U² (the loss's cross terms), under the
                    // guest's key.
                    let two_u: Vec<i64> = u
                        .iter()
                        .map(|&x| x.checked_mul(2).ok_or_else(core::overflow))
                        .collect::<Result<_>>()?;
                    let s1 = gather_with(&enc, &rows, &two_u);
                    let pen = core::loss_fixed(core::batch_penalty(cfg, &w, bl, None), f)?;
                    let masks = random_masks(rng, cols);
                    let masked = if per_row {
                        // D on packed P = B + 2^192·A: the middle slot of
                        // 2^192·Σ s1·P + Σ s2·P is Σ s1·B + Σ s2·A.
                        // Rows [x·U, U²]: the rows [x, U] scaled by U.
                        let s2 = scale_rows(&gather_with(&enc, &rows, &u), cols + 1, &u)?;
                        let d1 = pk_g.dot_columns(&d, &s1, cols + 1).map_err(he("dot"))?;
                        let d2 = pk_g.dot_columns(&d, &s2, cols + 1).map_err(he("dot"))?;
                        let up = pk_g
                            .mul_plain_batch(&d1, &vec![pack::shift(); cols + 1])
                            .map_err(he("mul"))?;
                        let c = pk_g.add_batch(&up, &d2).map_err(he("add"))?;
                        // Low and high slots are masked (the guest must not
                        // learn Σ x·U·B or Σ x·A); the middle one carries the
                        // gradient mask, or the penalty in the loss column.
                        let mids = masks.iter().copied().chain([pen]);
                        let m: Vec<Plaintext> = mids
                            .map(|mid| {
                                let low = [rng.next_u64(), rng.next_u64(), rng.next_u64()];
                                pack::mask(low, mid, [rng.next_u64(), rng.next_u64()])
                            })
                            .collect();
                        let em = pk_g.encrypt_batch(&m, rng).map_err(he("encrypt"))?;
                        pk_g.add_batch(&c, &em).map_err(he("add"))?
                    } else {
                        // Constant α: Xᵀ_h(α·U_h) and α·Σ U² are this host's
                        // to add in the clear.
                        let a = i128::from(const_alpha);
                        let xu = enc.xt_dot(&rows, &widen(&u));
                        let mut add = Vec::with_capacity(cols + 1);
                        for (m, v) in masks.iter().zip(&xu) {
                            add.push(
                                v.checked_mul(a)
                                    .and_then(|t| t.checked_add(*m))
                                    .ok_or_else(core::overflow)?,
                            );
                        }
                        let uu = u
                            .iter()
                            .try_fold(0i128, |s, &x| s.checked_add(i128::from(x) * i128::from(x)));
                        add.push(
                            uu.and_then(|uu| uu.checked_mul(a))
                                .and_then(|c| c.checked_add(pen))
                                .ok_or_else(core::overflow)?,
                        );
                        let gc = pk_g.dot_columns(&d, &s1, cols + 1).map_err(he("dot"))?;
                        // The fresh encryption re-randomises the inner products.
                        pk_g.add_batch(&gc, &encrypt_i128(&pk_g, &add, rng)?)
                            .map_err(he("add"))?
                    };
                    ch.send(
                        guest,
                        &tag(cfg, round, "hg_masked"),
                        wire::enc_cts(&pk_g, &masked),
                    )
                    .await?;
                    let t_hp = tag(cfg, round, "hg_plain");
                    let v = wire::dec_i128(guest, &t_hp, &ch.recv(guest, &t_hp).await?, cols)?;
                    let grad = unmask(&v, &masks, guest, &t_hp)?;
                    core::step(cfg, epoch, &mut w, &grad, bl, None);
                    let t_gm = tag(cfg, round, "g_masked");
                    let gm =
                        wire::dec_cts(&pk_h, guest, &t_gm, &ch.recv(guest, &t_gm).await?, gcols)?;
                    let gv = decrypt_i128(&sk_h, &gm, guest, &t_gm)?;
                    ch.send(guest, &tag(cfg, round, "g_plain"), wire::enc_i128(&gv))
                        .await?;
                }
                let t_e = tag(cfg, round, "epoch_end");
                let (stop, _) = wire::dec_epoch_end(guest, &t_e, &ch.recv(guest, &t_e).await?)?;
                if stop {
                    break 'epochs2;
                }
            }
        }
    }
    Ok(HostModel {
        feature_names: data.feature_names().to_vec(),
        weights: w,
        scaling: enc.scaling,
        guest: guest.clone(),
    })
}

async fn arbiter<S: AdditiveScheme, R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    cfg: &Config,
    rng: &mut R,
) -> Result<Vec<f64>> {
    let (pk, sk) =
        S::generate_keypair_with_policy(cfg.key_policy, cfg.key_bits, rng).map_err(he("keygen"))?;
    let pk_tag = tag(cfg, 0, "pk");
    let pk_bytes: bytes::Bytes = pk.to_bytes().into();
    for p in std::iter::once(&cfg.guest).chain(&cfg.hosts) {
        ch.send(p, &pk_tag, pk_bytes.clone()).await?;
    }
    let meta = tag(cfg, 0, "meta");
    let mut parties = Vec::new();
    let mut n = 0;
    for (k, p) in std::iter::once(&cfg.guest).chain(&cfg.hosts).enumerate() {
        let (rows, cols) = wire::dec_meta(p, &meta, &ch.recv(p, &meta).await?)?;
        if k == 0 {
            n = rows;
        } else {
            check_rows(n, rows, p)?;
        }
        parties.push((p.clone(), cols));
    }
    if n == 0 {
        return Err(LinearError::Data("the guest reported no rows".into()));
    }
    let f = cfg.precision_bits;
    let mut stopper = Stopper::new();
    let mut history = Vec::new();
    let mut round = 0u64;
    for epoch in 0..cfg.max_epochs {
        let mut sum = 0.0;
        for _ in core::batches(n, cfg.batch_size, None, epoch) {
            round += 1;
            let t_gm = tag(cfg, round, "g_masked");
            let t_gp = tag(cfg, round, "g_plain");
            for (p, cols) in &parties {
                let cts = wire::dec_cts(&pk, p, &t_gm, &ch.recv(p, &t_gm).await?, *cols)?;
                let v = decrypt_i128(&sk, &cts, p, &t_gm)?;
                ch.send(p, &t_gp, wire::enc_i128(&v)).await?;
            }
            let t_l = tag(cfg, round, "loss");
            let l = wire::dec_cts(&pk, &cfg.guest, &t_l, &ch.recv(&cfg.guest, &t_l).await?, 1)?;
            let v = sk.decrypt_batch(&l).map_err(he("decrypt"))?;
            let v = v.first().and_then(Plaintext::to_i128).ok_or_else(|| {
                FedError::malformed(&cfg.guest, &t_l, "decrypted loss out of range")
            })?;
            sum += v as f64 / core::loss_scale(f);
        }
        let l = sum / n as f64;
        history.push(l);
        let stop = stopper.update(cfg, l);
        let t_e = tag(cfg, round, "epoch_end");
        ch.send(&cfg.guest, &t_e, wire::enc_epoch_end(stop, l))
            .await?;
        for h in &cfg.hosts {
            ch.send(h, &t_e, wire::enc_epoch_end(stop, f64::NAN))
                .await?;
        }
        if stop {
            break;
        }
    }
    Ok(history)
}

fn pred_tag(task: &str) -> Tag {
    Tag::new(task, 0, "partial_scores")
}

fn seed_tag(task: &str) -> Tag {
    Tag::new(task, 0, "mask_seed")
}

/// Fractional bits of the partial scores sent for prediction.
const PRED_BITS: i32 = 32;

/// Prediction, guest side: combines its own partial scores with the hosts'
/// and returns the predictions (probabilities of class 1 for logistic
/// regression). With several hosts, each host's scores arrive masked with
/// pairwise masks that cancel in the sum, so the guest learns only `Σ_h u_h`.
/// `task` names the prediction task (message tags).
pub async fn predict_guest(
    ch: &dyn Channel,
    task: &str,
    model: &GuestModel,
    data: &Dataset,
) -> Result<Vec<f64>> {
    let u = model.partial_scores(data)?;
    let t = pred_tag(task);
    let mut sum = vec![0i128; u.len()];
    for h in &model.hosts {
        let v = wire::dec_i128(h, &t, &ch.recv(h, &t).await?, u.len())?;
        sum.iter_mut()
            .zip(&v)
            .for_each(|(a, b)| *a = a.wrapping_add(*b));
    }
    let s = 2f64.powi(PRED_BITS);
    Ok(u.iter()
        .zip(&sum)
        .map(|(u, b)| model.link(u + *b as f64 / s))
        .collect())
}

/// Prediction, host side: sends this host's partial scores to the guest,
/// fixed-point encoded and, if `hosts` (every host of the job, in the
/// job's order, this one included) has more than one entry, masked: each
/// pair of hosts agrees on a fresh seed (sent host to host, never through
/// the guest) and one adds, the other subtracts its ChaCha20 stream
/// modulo 2^128. With a single host the guest learns its scores anyway
/// (`u_h = u − u_g`), so they are sent as they are.
pub async fn predict_host<R: CryptoRng + Send + ?Sized>(
    ch: &dyn Channel,
    task: &str,
    model: &HostModel,
    data: &Dataset,
    hosts: &[PartyId],
    rng: &mut R,
) -> Result<()> {
    let me = ch.me();
    let pos = hosts
        .iter()
        .position(|h| h == me)
        .ok_or_else(|| LinearError::Config {
            field: "hosts",
            reason: format!("this party '{me}' is not among the hosts {hosts:?}"),
        })?;
    let s = 2f64.powi(PRED_BITS);
    let mut v = model
        .partial_scores(data)?
        .iter()
        .map(|&u| {
            let x = (u * s).round();
            if x.is_finite() && x.abs() < 2f64.powi(100) {
                Ok(x as i128)
            } else {
                Err(LinearError::Data(format!(
                    "partial score {u} is out of range"
                )))
            }
        })
        .collect::<Result<Vec<i128>>>()?;
    let t = seed_tag(task);
    for (k, peer) in hosts.iter().enumerate() {
        if k == pos {
            continue;
        }
        let (seed, sign) = if k > pos {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            ch.send(peer, &t, wire::enc_seed(&seed)).await?;
            (seed, 1i128)
        } else {
            let seed = wire::dec_seed(peer, &t, &ch.recv(peer, &t).await?)?;
            (seed, -1i128)
        };
        let mut prg = rand_chacha::ChaCha20Rng::from_seed(seed);
        for x in &mut v {
            let m = ((u128::from(prg.next_u64()) << 64) | u128::from(prg.next_u64())) as i128;
            *x = x.wrapping_add(m.wrapping_mul(sign));
        }
    }
    ch.send(&model.guest, &pred_tag(task), wire::enc_i128(&v))
        .await?;
    Ok(())
}
