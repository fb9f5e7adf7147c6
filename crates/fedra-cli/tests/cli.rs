//! The `fedra` binary as a user runs it: parties as separate OS processes over
//! loopback mutual TLS, the merged report, and failures that stop every party.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fedra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fedra"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fedra-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// Runs `examples/<name>/job.toml --local` into a fresh folder; asserts success.
fn run_example(name: &str) -> (PathBuf, std::process::Output) {
    let out = tmp(name);
    let o = fedra()
        .args([
            "run",
            &format!("examples/{name}/job.toml"),
            "--local",
            "--out",
        ])
        .arg(&out)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (out, o)
}

#[test]
fn quickstart_job_runs_as_two_processes_over_mutual_tls() {
    if !repo().join("../shared/datasets").exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let (out, o) = run_example("quickstart");
    let r = report(&out);
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["tasks"][0]["name"], "wire-check");
    assert_eq!(r["tasks"][1]["metrics"]["intersection_size"], 30000);
    assert_eq!(r["tasks"][2]["metrics"]["rows"], 30000);
    // SecureBoost on the aligned rows: 10 small trees; the accuracy bars are tested in
    // fedra-tree (and measured with examples/secureboost-default-credit).
    let sb = &r["tasks"][3]["metrics"];
    assert!(sb["auc"].as_f64().unwrap() > 0.7, "{sb}");
    assert_eq!(sb["rows_test"], 6000, "{sb}");
    assert_eq!(sb["encryptions"], 240_000, "{sb}");
    for p in ["guest", "host"] {
        let t = &r["parties"][p];
        assert_eq!(t["status"], "succeeded");
        // Everything crossed a real TLS socket: wire bytes exceed the payload bytes.
        assert!(t["bytes_sent"].as_u64().unwrap() > 5_000_000, "{t}");
        assert!(
            t["wire_bytes_sent"].as_u64().unwrap() > t["bytes_sent"].as_u64().unwrap(),
            "{t}"
        );
        let log = std::fs::read_to_string(out.join("logs").join(format!("{p}.log"))).unwrap();
        assert!(log.contains("federation channel up"), "{log}");
    }
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("job 'quickstart' succeeded"), "{text}");
}

#[test]
fn stream_join_example_joins_and_hands_the_joined_rows_to_the_next_task() {
    if !repo().join("../shared/datasets").exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let (out, _) = run_example("stream-join-avazu");
    let r = report(&out);
    assert_eq!(r["tasks"][0]["metrics"]["joined"], 100);
    assert_eq!(r["tasks"][0]["metrics"]["follower_unmatched"], 0);
    // The second task read the joined files, without the time column.
    assert_eq!(r["tasks"][1]["metrics"]["rows"], 100);
    assert_eq!(r["tasks"][1]["metrics"]["features_host"], 7);
    for p in ["guest", "host"] {
        let joined =
            std::fs::read_to_string(out.join(format!("parties/{p}/join.joined.csv"))).unwrap();
        assert_eq!(joined.lines().count(), 101);
    }
}

/// The distinct values of CSV column `col` (by header name).
fn column_set(path: &Path, col: &str) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let k = lines
        .next()
        .unwrap()
        .split(',')
        .position(|h| h.trim() == col)
        .unwrap();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').nth(k).unwrap().trim().to_owned())
        .collect()
}

#[test]
fn psi_example_aligns_the_breast_sample_id_files_in_the_same_order() {
    let data = repo().join("../shared/datasets/fate");
    if !data.exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let (out, _) = run_example("psi-breast");
    let r = report(&out);
    let guest = column_set(&data.join("breast_hetero_guest_sample_id.csv"), "id");
    let host = column_set(&data.join("breast_hetero_host_sample_id.csv"), "id");
    let plain = guest.intersection(&host).count();
    assert_eq!(r["tasks"][0]["metrics"]["intersection_size"], plain);
    assert_eq!(r["tasks"][1]["metrics"]["rows"], plain);
    let ids = |p: &str| -> Vec<String> {
        let t = std::fs::read_to_string(out.join(format!("parties/{p}/psi.aligned.csv"))).unwrap();
        t.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids("guest"),
        ids("host"),
        "aligned rows are in the same order on both sides"
    );
    assert_eq!(ids("guest").len(), plain);
}

#[test]
fn hetero_lr_trains_and_predicts_across_two_processes() {
    if !repo().join("../shared/datasets").exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let (out, _) = run_example("hetero-lr-breast");
    let r = report(&out);
    let m = &r["tasks"][1]["metrics"];
    // This checks the two-process mechanics; the accuracy bar (held-out AUC >= 0.98,
    // secure == plaintext) is tested deterministically in fedra-linear. The PSI row
    // order is random per run, so batches differ between runs; one run in CI showed
    // AUC 0.955 with a loss spike in epoch 5 (under investigation, see the closing note).
    assert!(m["auc"].as_f64().unwrap() >= 0.9, "{m}");
    assert!(m["train_auc"].as_f64().unwrap() >= 0.9, "{m}");
    // Stratified: round(0.2 x 212) + round(0.2 x 357) = 42 + 71 held-out rows.
    assert_eq!(m["rows_test"], 113, "{m}");
    for p in ["guest", "host"] {
        let model =
            std::fs::read_to_string(out.join(format!("parties/{p}/lr.model.json"))).unwrap();
        assert!(model.contains("\"weights\""), "{model}");
    }

    // A later job predicts with the saved model parts, each party loading its own.
    let data = repo()
        .join("../shared/datasets/fate")
        .canonicalize()
        .unwrap();
    let parties = out.join("parties").display().to_string();
    let job = format!(
        "[job]\nid = \"lr-predict\"\n\
         [parties.guest]\nrole = \"guest\"\ndata = {{ path = \"{d}/breast_hetero_guest.csv\", label = \"y\" }}\n\
         [parties.host]\nrole = \"host\"\ndata = {{ path = \"{d}/breast_hetero_host.csv\" }}\n\
         [[tasks]]\nname = \"predict\"\nkind = \"hetero_lr_predict\"\nguest = \"guest\"\n\
         models = {{ guest = \"{parties}/guest/lr.model.json\", host = \"{parties}/host/lr.model.json\" }}\n",
        d = data.display()
    );
    let job_path = out.join("predict.toml");
    std::fs::write(&job_path, job).unwrap();
    let o = fedra()
        .arg("run")
        .arg(&job_path)
        .args(["--local", "--out"])
        .arg(out.join("predict"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&out.join("predict"));
    let m = &r["tasks"][0]["metrics"];
    assert_eq!(m["rows"], 569);
    assert!(m["auc"].as_f64().unwrap() >= 0.9, "{m}");
    let preds =
        std::fs::read_to_string(out.join("predict/parties/guest/predict.predictions.csv")).unwrap();
    assert_eq!(preds.lines().count(), 570);
    // The host learns no prediction.
    assert!(
        !out.join("predict/parties/host/predict.predictions.csv")
            .exists()
    );
}

#[test]
fn secureboost_trains_and_predicts_across_two_processes() {
    if !repo().join("../shared/datasets").exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let (out, _) = run_example("secureboost-breast");
    let r = report(&out);
    let m = &r["tasks"][1]["metrics"];
    // Mechanics across processes; the accuracy bar (held-out AUC >= 0.98) and
    // secure == plaintext twin are tested deterministically in fedra-tree.
    assert!(m["auc"].as_f64().unwrap() >= 0.95, "{m}");
    assert!(m["train_auc"].as_f64().unwrap() >= 0.95, "{m}");
    assert_eq!(m["rows_test"], 113, "{m}");
    assert_eq!(m["trees"], 30, "{m}");
    // One packed ciphertext per training row per tree, except the complete-secure
    // first tree (guest features only, nothing sent).
    assert_eq!(m["encryptions"], 456 * 29, "{m}");
    assert!(m["ciphertext_additions"].as_u64().unwrap() > 0, "{m}");
    // Private prediction: the guest encrypts leaf weights and receives only packed
    // sums (several rows per ciphertext) from the host.
    assert!(m["predict_encryptions"].as_u64().unwrap() > 0, "{m}");
    let sums = m["predict_decryptions"].as_u64().unwrap();
    assert!(sums > 0 && sums < 113 / 4, "{m}");
    assert_eq!(m["predict_host_rerandomized"], sums, "{m}");
    let host_model = std::fs::read_to_string(out.join("parties/host/sb.model.json")).unwrap();
    assert!(host_model.contains("\"own\""), "{host_model}");
    assert!(
        !host_model.contains("weights"),
        "leaf weights stay with the guest"
    );

    let data = repo()
        .join("../shared/datasets/fate")
        .canonicalize()
        .unwrap();
    let parties = out.join("parties").display().to_string();
    let job = format!(
        "[job]\nid = \"sb-predict\"\n\
         [parties.guest]\nrole = \"guest\"\ndata = {{ path = \"{d}/breast_hetero_guest.csv\", label = \"y\" }}\n\
         [parties.host]\nrole = \"host\"\ndata = {{ path = \"{d}/breast_hetero_host.csv\" }}\n\
         [[tasks]]\nname = \"predict\"\nkind = \"secureboost_predict\"\nguest = \"guest\"\n\
         models = {{ guest = \"{parties}/guest/sb.model.json\", host = \"{parties}/host/sb.model.json\" }}\n",
        d = data.display()
    );
    let job_path = out.join("predict.toml");
    std::fs::write(&job_path, job).unwrap();
    let o = fedra()
        .arg("run")
        .arg(&job_path)
        .args(["--local", "--out"])
        .arg(out.join("predict"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = &report(&out.join("predict"))["tasks"][0]["metrics"];
    assert_eq!(m["rows"], 569);
    assert!(m["auc"].as_f64().unwrap() >= 0.95, "{m}");
    let sums = m["predict_decryptions"].as_u64().unwrap();
    assert!(sums > 0 && sums < 569 / 4, "{m}");
    assert!(
        !out.join("predict/parties/host/predict.predictions.csv")
            .exists()
    );
}

#[test]
fn fedavg_server_and_clients_train_evaluate_and_resume() {
    if !repo().join("../shared/datasets").exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let (out, _) = run_example("fedavg-breast");
    let r = report(&out);
    let m = &r["tasks"][0]["metrics"];
    // The run is a function of the job (seeded sampling, batch order and
    // initial model), so this is the example's one result: AUC 0.9880.
    assert!(m["auc"].as_f64().unwrap() >= 0.985, "{m}");
    assert_eq!(m["rounds"], 30, "{m}");
    assert_eq!(m["auc_by_round"].as_array().unwrap().len(), 30, "{m}");
    assert_eq!(m["client_failures"], 0, "{m}");
    for p in ["server", "hospital-a", "hospital-b"] {
        assert_eq!(r["parties"][p]["status"], "succeeded");
    }
    let model_path = out.join("parties/server/fedavg.model.json");
    let model = std::fs::read(&model_path).unwrap();
    let job = std::fs::read_to_string(repo().join("examples/fedavg-breast/job.toml")).unwrap();
    let run_with_rounds = |rounds: u32, out: &Path| {
        let job_path = repo().join(format!(
            "examples/fedavg-breast/.resume-{}-{rounds}.toml",
            std::process::id()
        ));
        std::fs::write(
            &job_path,
            job.replace("rounds = 30", &format!("rounds = {rounds}")),
        )
        .unwrap();
        let o = fedra()
            .arg("run")
            .arg(&job_path)
            .args(["--local", "--out"])
            .arg(out)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&job_path);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        report(out)["tasks"][0]["metrics"].clone()
    };
    // Stopped after 12 rounds and resumed to 30 in new processes (new OS
    // randomness): the same model, bit for bit, as the uninterrupted run.
    let out2 = tmp("fedavg-breast-resumed");
    run_with_rounds(12, &out2);
    let m2 = run_with_rounds(30, &out2);
    assert_eq!(m2["resumed_after_round"], 12, "{m2}");
    assert_eq!(m2["auc"], m["auc"], "{m2}");
    let model2 = std::fs::read(out2.join("parties/server/fedavg.model.json")).unwrap();
    assert!(model2 == model, "the resumed run's model differs");
    let _ = std::fs::remove_dir_all(&out2);
    // The same job with more rounds and the same output folder resumes from the
    // server's checkpoint after round 30.
    let m = run_with_rounds(32, &out);
    assert_eq!(m["resumed_after_round"], 30, "{m}");
    assert_eq!(m["rounds"], 32, "{m}");
    assert_eq!(m["rounds_trained"], 2, "{m}");
}

#[test]
fn privacy_epsilon_agrees_with_dp_accounting() {
    let o = fedra()
        .args([
            "privacy",
            "epsilon",
            "--noise-multiplier",
            "1.1",
            "--sampling-rate",
            "0.01",
            "--steps",
            "6000",
            "--delta",
            "1e-5",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // dp-accounting 0.6.0 (RDP): 4.246599.
    let eps = v["epsilon"].as_f64().unwrap();
    assert!((eps / 4.246599 - 1.0).abs() < 1e-3, "{v}");
    let o = fedra()
        .args([
            "privacy",
            "epsilon",
            "--target-epsilon",
            "4.246599",
            "--sampling-rate",
            "0.01",
            "--steps",
            "6000",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        (v["noise_multiplier"].as_f64().unwrap() - 1.1).abs() < 1e-3,
        "{v}"
    );
    let o = fedra()
        .args([
            "privacy",
            "epsilon",
            "--noise-multiplier",
            "1",
            "--sampling-rate",
            "2",
            "--steps",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("sampling"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn killing_one_party_mid_job_stops_the_other_with_an_error_naming_it() {
    let dir = tmp("kill");
    let o = fedra()
        .args(["certs", "init", "--parties", "guest,host", "--dir"])
        .arg(dir.join("certs"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    write(
        &dir.join("job.toml"),
        "[job]\nid = \"kill\"\n[runtime]\npeer_timeout_s = 2\n\
         [parties.guest]\nrole = \"guest\"\n[parties.host]\nrole = \"host\"\n\
         [[tasks]]\nname = \"ping\"\nkind = \"echo\"\nrounds = 100000\ninterval_ms = 10\n",
    );
    let ports: Vec<u16> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    for (i, (me, peer)) in [("guest", "host"), ("host", "guest")]
        .into_iter()
        .enumerate()
    {
        write(
            &dir.join(format!("{me}.toml")),
            &format!(
                "party = \"{me}\"\nlisten = \"127.0.0.1:{}\"\n[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{me}.pem\"\nkey = \"certs/{me}.key\"\n[peers]\n{peer} = \"127.0.0.1:{}\"\n",
                ports[i],
                ports[1 - i]
            ),
        );
    }
    let spawn = |me: &str, stdout: Stdio| {
        fedra()
            .args(["run", "job.toml", "--party", me, "--config"])
            .arg(format!("{me}.toml"))
            .args(["--out", &format!("out/{me}"), "--events"])
            .current_dir(&dir)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut guest = spawn("guest", Stdio::null());
    let mut host = spawn("host", Stdio::piped());
    // Wait until the job is really under way: the host reports progress in round 20.
    let mut lines = BufReader::new(host.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines.next().expect("host exited early").unwrap();
        if line.contains("\"done\":20") {
            break;
        }
        assert!(Instant::now() < deadline, "no progress from the host");
    }
    host.kill().unwrap();
    host.wait().unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = guest.try_wait().unwrap() {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "guest still running 30 s after the host died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = killed.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut guest.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    // peer_timeout_s = 2: the guest notices within a few heartbeats of that.
    assert!(
        took < Duration::from_secs(10),
        "guest took {took:?} to stop"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains("party 'host'"), "{last}");
    assert!(
        last.contains("in task 'ping' round "),
        "the error names the task and round: {last}"
    );
    let r = report(&dir.join("out/guest"));
    assert_eq!(r["tasks"][0]["status"], "failed");
}

#[test]
fn bad_data_on_one_party_fails_every_party_with_file_line_and_column() {
    let dir = tmp("baddata");
    write(&dir.join("guest.csv"), "id,y,x0\n1,0,0.5\n2,1,0.7\n");
    write(&dir.join("host.csv"), "id,x0,x1\n1,0.1,0.2\n2,0.3\n");
    write(
        &dir.join("job.toml"),
        "[job]\nid = \"bad\"\n[parties.guest]\nrole = \"guest\"\ndata = { path = \"guest.csv\", label = \"y\" }\n\
         [parties.host]\nrole = \"host\"\ndata = { path = \"host.csv\" }\n\
         [[tasks]]\nname = \"stats\"\nkind = \"dataset_stats\"\n",
    );
    let out = dir.join("out");
    let o = fedra()
        .args(["run", "job.toml", "--local", "--out"])
        .arg(&out)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let r = report(&out);
    assert_eq!(r["status"], "failed");
    let host = r["parties"]["host"]["error"].as_str().unwrap();
    assert!(host.contains("host.csv: line 3"), "{host}");
    assert!(
        host.contains("expected 3 fields, found 2") || host.contains("found 2"),
        "{host}"
    );
    let guest = r["parties"]["guest"]["error"].as_str().unwrap();
    assert!(
        guest.contains("party 'host' failed in task 'stats'"),
        "{guest}"
    );
    assert_eq!(r["tasks"][0]["status"], "failed");
}

#[test]
fn validate_names_the_bad_field() {
    let dir = tmp("validate");
    write(
        &dir.join("job.toml"),
        "[job]\nid = \"v\"\n[parties.guest]\nrole = \"guest\"\n[parties.host]\nrole = \"host\"\n\
         [[tasks]]\nname = \"e\"\nkind = \"echo\"\nrounds = 0\n",
    );
    let o = fedra()
        .args(["validate", "job.toml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("tasks[0].rounds: must be in 1..=1000000, got 0"),
        "{err}"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["quickstart", "--help"],
        vec!["validate", "--help"],
        vec!["certs", "init", "--help"],
        vec!["certs", "issue", "--help"],
        vec!["bench", "transport", "--help"],
        vec!["bench", "splitnn", "--help"],
        vec!["gen", "criteo", "--help"],
    ] {
        let o = fedra().args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&o.stdout).len() > 100, "{args:?}");
    }
}

// ---------------------------------------------------------------- split NN

/// A `splitnn` job on default_credit (already row-aligned: same ids in the same
/// order in both files) with a small model; `extra` is appended to the task table.
fn splitnn_job(id: &str, epochs: u32, every: u32, extra: &str) -> String {
    let data = repo().join("../shared/datasets/fate");
    format!(
        "[job]\nid = \"{id}\"\n[runtime]\npeer_timeout_s = 2\n\
         [parties.guest]\nrole = \"guest\"\ndata = {{ path = \"{g}\", label = \"y\" }}\n\
         [parties.host]\nrole = \"host\"\ndata = {{ path = \"{h}\" }}\n\
         [[tasks]]\nname = \"snn\"\nkind = \"splitnn\"\nleader = \"guest\"\nholdout = 0.1\n\
         batch_size = 64\nepochs = {epochs}\neval_every = {every}\ncheckpoint_every = {every}\n\
         shuffle_seed = 3\ninit_seed = 4\n{extra}\n\
         [tasks.top]\nhidden = [16]\noptimizer = {{ kind = \"adam\", lr = 0.002 }}\n\
         [tasks.towers.guest]\nhidden = [16]\ncut = 8\noptimizer = {{ kind = \"adam\", lr = 0.002 }}\n\
         [tasks.towers.host]\nhidden = [16]\ncut = 8\noptimizer = {{ kind = \"adam\", lr = 0.002 }}\n",
        g = data.join("default_credit_hetero_guest.csv").display(),
        h = data.join("default_credit_hetero_host.csv").display(),
    )
}

#[test]
fn splitnn_trains_two_processes_over_mtls_with_metrics() {
    if !repo().join("../shared/datasets").exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let dir = tmp("snn-small");
    write(&dir.join("job.toml"), &splitnn_job("snn-small", 1, 100, ""));
    let out = dir.join("out");
    let o = fedra()
        .args(["run", "job.toml", "--local", "--out"])
        .arg(&out)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&out);
    let m = &r["tasks"][0]["metrics"];
    // One epoch of a small model: sane, not tuned (the example reaches 0.765+).
    let auc = m["auc"].as_f64().unwrap();
    assert!(auc > 0.68 && auc < 0.85, "{m}");
    assert!(m["train_auc"].as_f64().unwrap() > 0.68, "{m}");
    for k in [
        "log_loss",
        "calibration",
        "train_log_loss",
        "train_calibration",
        "examples_per_s",
        "bytes_per_example",
        "leak_auc",
        "host_bytes_per_example",
    ] {
        assert!(m[k].as_f64().unwrap() > 0.0, "{k}: {m}");
    }
    let c = m["calibration"].as_f64().unwrap();
    assert!(c > 0.5 && c < 2.0, "{m}");
    assert_eq!(m["steps"], 422, "{m}"); // ceil(27000 / 64)
    assert_eq!(m["rows_test"], 3000, "{m}");
    assert_eq!(m["auc_by_step"].as_array().unwrap().len(), 5, "{m}");
    assert_eq!(m["resumed_from_step"], 0, "{m}");
    // Cuts (64 f32 + framing) to the guest, gradients back: ~2 × 8 × 4 bytes a row.
    let b = m["bytes_per_example"].as_f64().unwrap();
    assert!(b > 64.0 && b < 400.0, "{m}");
}

#[test]
fn splitnn_follower_killed_mid_training_resumes_at_the_same_step() {
    if !repo().join("../shared/datasets").exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let dir = tmp("snn-kill");
    let o = fedra()
        .args(["certs", "init", "--parties", "guest,host", "--dir"])
        .arg(dir.join("certs"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    write(&dir.join("job.toml"), &splitnn_job("snn-kill", 3, 25, ""));
    let ports: Vec<u16> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    for (i, (me, peer)) in [("guest", "host"), ("host", "guest")]
        .into_iter()
        .enumerate()
    {
        write(
            &dir.join(format!("{me}.toml")),
            &format!(
                "party = \"{me}\"\nlisten = \"127.0.0.1:{}\"\n[tls]\nca = \"certs/ca.pem\"\ncert = \"certs/{me}.pem\"\nkey = \"certs/{me}.key\"\n[peers]\n{peer} = \"127.0.0.1:{}\"\n",
                ports[i],
                ports[1 - i]
            ),
        );
    }
    let spawn = |me: &str, stdout: Stdio| {
        fedra()
            .args(["run", "job.toml", "--party", me, "--config"])
            .arg(format!("{me}.toml"))
            .args(["--out", &format!("out/{me}"), "--events"])
            .current_dir(&dir)
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut guest = spawn("guest", Stdio::piped());
    let mut host = spawn("host", Stdio::null());
    // The leader reports progress at every evaluation (every 25 steps); once it
    // passed step 100, checkpoints have been committed.
    let mut lines = BufReader::new(guest.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines.next().expect("guest exited early").unwrap();
        if line.contains("\"done\":100") {
            break;
        }
        assert!(Instant::now() < deadline, "no progress from the guest");
    }
    // A real SIGKILL of the follower's process, mid-epoch.
    host.kill().unwrap();
    host.wait().unwrap();
    // Drain the guest's events until it exits.
    for _ in lines.by_ref() {}
    let status = guest.wait().unwrap();
    assert!(!status.success(), "the guest must fail when the host dies");
    let saved: Vec<String> = std::fs::read_dir(dir.join("out/host"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".ckpt-"))
        .collect();
    assert!(!saved.is_empty(), "no checkpoint on the host");
    // Both parties again, same output folders: they agree on a step and finish.
    let mut guest = spawn("guest", Stdio::null());
    let mut host = spawn("host", Stdio::null());
    assert!(guest.wait().unwrap().success());
    assert!(host.wait().unwrap().success());
    let g = report(&dir.join("out/guest"));
    let h = report(&dir.join("out/host"));
    let gm = &g["tasks"][0]["metrics"];
    let hm = &h["tasks"][0]["metrics"];
    let step = gm["resumed_from_step"].as_u64().unwrap();
    assert!(step >= 75, "{gm}");
    assert_eq!(step % 25, 0, "{gm}");
    assert_eq!(hm["host_resumed_from_step"].as_u64().unwrap(), step, "{hm}");
    let total = 3 * 422;
    assert_eq!(gm["steps"], total, "{gm}");
    assert_eq!(hm["host_steps"], total, "{hm}");
    assert!(gm["auc"].as_f64().unwrap() > 0.68, "{gm}");
}

#[test]
fn splitnn_validation_names_the_bad_field_and_its_range() {
    let dir = tmp("snn-validate");
    write(&dir.join("g.csv"), "id,y,x\n1,0,0.5\n");
    write(&dir.join("h.csv"), "id,z\n1,0.5\n");
    let base = "[job]\nid = \"v\"\n[parties.guest]\nrole = \"guest\"\ndata = { path = \"g.csv\", label = \"y\" }\n\
                [parties.host]\nrole = \"host\"\ndata = { path = \"h.csv\" }\n\
                [[tasks]]\nname = \"snn\"\nkind = \"splitnn\"\nleader = \"guest\"\n";
    let tail = "[tasks.top]\nhidden = [8]\n[tasks.towers.host]\ncut = 4\n";
    for (extra, tail2, want) in [
        (
            "staleness = 2\n",
            tail,
            "tasks[0].staleness: must be 0 or 1 (got 2)",
        ),
        (
            "batch_size = 0\n",
            tail,
            "tasks[0].batch_size: must be in 1..=1048576 (got 0)",
        ),
        (
            "",
            "[tasks.top]\n[tasks.towers.host]\ncut = 0\n",
            "tasks[0].towers.host.cut: must be in 1..=65536 (got 0)",
        ),
        (
            "",
            "[tasks.top]\nhidden = [0]\n[tasks.towers.host]\ncut = 4\n",
            "tasks[0].top.hidden: each width must be in 1..=65536 (got 0)",
        ),
        (
            "protection = { dp = { clip = 0.0, noise_multiplier = 1.0, delta = 1e-5 } }\n",
            tail,
            "tasks[0].protection",
        ),
        (
            "",
            "[tasks.top]\n[tasks.towers.host]\ncut = 4\nsparse = { fields = [\"c\"], rows = 100, dim = 0 }\n",
            "tasks[0].towers.host.sparse.dim: must be in 1..=1024 (got 0)",
        ),
        (
            "",
            "[tasks.top]\nobjective = { multiclass = { classes = 1 } }\n[tasks.towers.host]\ncut = 4\n",
            "tasks[0].top.objective.multiclass.classes: must be in 2..=65536 (got 1)",
        ),
        (
            "",
            "[tasks.top]\n[tasks.towers.guest]\ncut = 4\n",
            "tasks[0].towers: needs the tower of at least one follower",
        ),
        (
            "",
            "[tasks.top]\n[tasks.towers.nobody]\ncut = 4\n",
            "tasks[0].towers.nobody: nobody is not a party of the job",
        ),
    ] {
        write(&dir.join("job.toml"), &format!("{base}{extra}{tail2}"));
        let o = fedra()
            .args(["validate", "job.toml"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{want}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "want {want:?}, got {err}");
    }
}

#[test]
fn splitnn_criteo_example_runs_with_categorical_fields_and_resumes() {
    if !repo().join("../shared/datasets").exists() {
        eprintln!("skipping: shared datasets not found");
        return;
    }
    let (out, _) = run_example("splitnn-criteo");
    let m = report(&out)["tasks"][0]["metrics"].clone();
    assert_eq!(m["rows_train"], 160, "{m}");
    assert_eq!(m["rows_test"], 40, "{m}");
    assert!(m["auc"].as_f64().is_some(), "{m}");
    // Shared 65536 × 8 table with row-wise Adagrad: 8 f32 weights + 1 accumulator.
    assert_eq!(m["host_embedding_bytes_per_row"], 36, "{m}");
    assert_eq!(m["host_embedding_table_bytes"], 65536 * 36, "{m}");
    // Re-run into the same folder: both resume from the last checkpoint (step 20 of
    // 25) and reach the same model as the uninterrupted run (staleness 0).
    let o = fedra()
        .args([
            "run",
            "examples/splitnn-criteo/job.toml",
            "--local",
            "--out",
        ])
        .arg(&out)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m2 = report(&out)["tasks"][0]["metrics"].clone();
    assert_eq!(m2["resumed_from_step"], 20, "{m2}");
    assert_eq!(m2["host_resumed_from_step"], 20, "{m2}");
    assert_eq!(m2["auc"], m["auc"], "{m2}");
}

/// The full example (8 epochs of the 128×3 model; minutes in a debug build):
/// `cargo test -p fedra-cli --test cli -- --ignored splitnn_default_credit`.
#[test]
#[ignore]
fn splitnn_default_credit_example_meets_the_auc_bar() {
    let (out, _) = run_example("splitnn-default-credit");
    let m = report(&out)["tasks"][1]["metrics"].clone();
    assert!(m["auc"].as_f64().unwrap() >= 0.765, "{m}");
}

#[test]
fn gen_criteo_writes_two_parties_files_that_a_split_model_learns_from() {
    let dir = tmp("gen-criteo");
    let o = fedra()
        .args(["gen", "criteo", "--rows", "20000", "--seed", "3", "--out"])
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let leader = std::fs::read_to_string(dir.join("data/leader.csv")).unwrap();
    let follower = std::fs::read_to_string(dir.join("data/follower.csv")).unwrap();
    assert_eq!(leader.lines().count(), 20001);
    assert_eq!(follower.lines().count(), 20001);
    assert!(leader.starts_with("id,label,I1,"), "{}", &leader[..40]);
    assert!(follower.starts_with("id,C1,C2,"), "{}", &follower[..40]);
    let first: Vec<&str> = follower.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(first.len(), 27);
    assert!(first[1].len() == 8 && first[1].chars().all(|c| c.is_ascii_hexdigit()));
    // Reproducible from the seed.
    let again = tmp("gen-criteo-2");
    let o = fedra()
        .args(["gen", "criteo", "--rows", "20000", "--seed", "3", "--out"])
        .arg(&again)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(again.join("leader.csv")).unwrap(),
        leader
    );
    let fields: Vec<String> = (1..=26).map(|i| format!("\"C{i}\"")).collect();
    let fields = fields.join(", ");
    write(
        &dir.join("job.toml"),
        &format!(
            "[job]\nid = \"gen\"\n[parties.guest]\nrole = \"guest\"\ndata = {{ path = \"data/leader.csv\", label = \"label\" }}\n\
             [parties.host]\nrole = \"host\"\ndata = {{ path = \"data/follower.csv\", features = [], categorical = [{fields}] }}\n\
             [[tasks]]\nname = \"snn\"\nkind = \"splitnn\"\nleader = \"guest\"\nbatch_size = 128\nepochs = 1\nstaleness = 1\n\
             [tasks.top]\nhidden = [32]\n[tasks.towers.guest]\ncut = 8\n\
             [tasks.towers.host]\ncut = 16\nsparse = {{ fields = [{fields}], rows = 100000, dim = 8 }}\n"
        ),
    );
    let out = dir.join("out");
    let o = fedra()
        .args(["run", "job.toml", "--local", "--out"])
        .arg(&out)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = report(&out)["tasks"][0]["metrics"].clone();
    // Learnable but not trivial: the tail ids are mostly unique, so the tables
    // memorise (train AUC ~0.89) and held-out AUC is ~0.64 after one epoch.
    assert!(m["auc"].as_f64().unwrap() > 0.6, "{m}");
    assert_eq!(m["host_embedding_bytes_per_row"], 36, "{m}");
}
