//! The `fedra` binary as a user runs it: parties as separate OS processes over
//! loopback mutual TLS, the merged report, failures that stop every party, and
//! horizontal clients whose death does not (SIGKILL mid-training). Module `fifty`
//! runs 50 horizontal clients and a server in this process over 51 real gRPC
//! endpoints with mutual TLS.

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
    let data = repo().join("data/fate");
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
        // A party's output folder and files are its own (0700 / 0600).
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| {
            std::fs::metadata(out.join(format!("parties/{p}{f}")))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!((mode(""), mode("/lr.model.json")), (0o700, 0o600), "{p}");
    }

    // A later job predicts with the saved model parts, each party loading its own.
    let data = repo().join("data/fate").canonicalize().unwrap();
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

    let data = repo().join("data/fate").canonicalize().unwrap();
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

/// Every visible command at every depth, as the CLI's own clap tree lists it
/// (`fedra __commands`), has a description, documented arguments and a `--help`
/// that succeeds and prints that description.
#[test]
fn every_command_has_help() {
    let o = fedra().arg("__commands").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let commands: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let paths: Vec<String> = commands
        .iter()
        .map(|c| {
            let p: Vec<&str> = c["path"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            p.join(" ")
        })
        .collect();
    // The walk reaches the leaves (not a vacuous pass).
    for known in [
        "",
        "run",
        "bench splitnn",
        "bench he",
        "gen criteo",
        "privacy epsilon",
    ] {
        assert!(
            paths.iter().any(|p| p == known),
            "{known:?} not in {paths:?}"
        );
    }
    for (c, path) in commands.iter().zip(&paths) {
        let about = c["about"].as_str().unwrap();
        assert!(
            !about.trim().is_empty(),
            "`fedra {path}` has no description"
        );
        assert_eq!(
            c["args_without_help"],
            serde_json::json!([]),
            "`fedra {path}` has arguments without help"
        );
        let mut args: Vec<&str> = path.split_whitespace().collect();
        args.push("--help");
        let o = fedra().args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(
            help.contains(about.lines().next().unwrap_or_default()),
            "{args:?} does not print its description:\n{help}"
        );
    }
}

// ---------------------------------------------------------------- split NN

/// A `splitnn` job on default_credit (already row-aligned: same ids in the same
/// order in both files) with a small model; `extra` is appended to the task table.
fn splitnn_job(id: &str, epochs: u32, every: u32, extra: &str) -> String {
    let data = repo().join("data/fate");
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
#[ignore = "slow: 8 epochs of the 128×3 model, minutes in a debug build; run by hand to report the example's AUC"]
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

/// The pid of the child of `parent` that runs party `party` (Linux `/proc`).
#[cfg(target_os = "linux")]
fn party_pid(parent: u32, party: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(parent) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        if args
            .windows(2)
            .any(|w| w[0] == b"--party" && w[1] == party.as_bytes())
        {
            return Some(pid);
        }
    }
    None
}

/// The last round in a horizontal server checkpoint (`{"round":N,...` after a
/// 20-byte binary header), if the file exists.
fn checkpoint_round(path: &Path) -> Option<u64> {
    let b = std::fs::read(path).ok()?;
    let json = String::from_utf8_lossy(b.get(20..)?.get(..64.min(b.len() - 20))?).into_owned();
    json.strip_prefix("{\"round\":")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// FedAvg on breast with three client processes (the guest file split in two,
/// plus the host file); `hospital-c`'s process gets SIGKILL once the server has
/// completed round 3. Returns the exit status, the report and the seconds from the
/// kill to the end of `fedra run --local`.
#[cfg(target_os = "linux")]
fn fedavg_with_a_killed_client(
    name: &str,
    extra: &str,
    sampling: &str,
) -> (std::process::ExitStatus, serde_json::Value, f64) {
    let data = repo().join("data/fate").canonicalize().unwrap();
    let dir = tmp(name);
    let guest = std::fs::read_to_string(data.join("breast_homo_guest.csv")).unwrap();
    let mut lines = guest.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let half = rows.len() / 2;
    for (file, part) in [("a.csv", &rows[..half]), ("c.csv", &rows[half..])] {
        write(&dir.join(file), &format!("{header}\n{}\n", part.join("\n")));
    }
    let d = data.display();
    let dd = dir.display();
    write(
        &dir.join("job.toml"),
        &format!(
            "[job]\nid = \"{name}\"\n[runtime]\npeer_timeout_s = 2\n\
             [parties.server]\nrole = \"server\"\ndata = {{ path = \"{d}/breast_homo_test.csv\", id_column = \"id\", label = \"y\" }}\n\
             [parties.hospital-a]\nrole = \"client\"\ndata = {{ path = \"{dd}/a.csv\", id_column = \"id\", label = \"y\" }}\n\
             [parties.hospital-b]\nrole = \"client\"\ndata = {{ path = \"{d}/breast_homo_host.csv\", id_column = \"id\", label = \"y\" }}\n\
             [parties.hospital-c]\nrole = \"client\"\ndata = {{ path = \"{dd}/c.csv\", id_column = \"id\", label = \"y\" }}\n\
             [[tasks]]\nname = \"fedavg\"\nkind = \"horizontal\"\nserver = \"server\"\nrounds = 40\nround_timeout_s = 60.0\n\
             [tasks.model]\ninputs = 30\nhidden = [32]\noutputs = 1\nactivation = \"tanh\"\n\
             [tasks.local]\nlocal_epochs = 1\nbatch_size = 32\noptimizer = {{ kind = \"adam\", lr = 0.003 }}\n\
             [tasks.horizontal]\nseed = 7\nstrategy = {{ kind = \"fed_avg\" }}\nsampling = {sampling}\n{extra}"
        ),
    );
    let out = dir.join("out");
    let mut run = fedra()
        .args(["run", "job.toml", "--local", "--out"])
        .arg(&out)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ck = out.join("parties/server/fedavg.checkpoint");
    let deadline = Instant::now() + Duration::from_secs(120);
    let victim = loop {
        assert!(Instant::now() < deadline, "the job did not reach round 3");
        assert!(
            run.try_wait().unwrap().is_none(),
            "the job ended before the kill"
        );
        if checkpoint_round(&ck).is_some_and(|r| r >= 3)
            && let Some(pid) = party_pid(run.id(), "hospital-c")
        {
            break pid;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let o = Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success());
    let killed = Instant::now();
    let o = run.wait_with_output().unwrap();
    let took = killed.elapsed().as_secs_f64();
    eprintln!(
        "{name}: ended {took:.1} s after the kill\nstdout:\n{}",
        String::from_utf8_lossy(&o.stdout)
    );
    (o.status, report(&out), took)
}

#[cfg(target_os = "linux")]
fn assert_finished_without(status: std::process::ExitStatus, r: &serde_json::Value, took: f64) {
    assert!(status.success(), "{r:#}");
    assert_eq!(r["status"], "succeeded_with_dropouts", "{r:#}");
    assert_eq!(r["dropped"][0]["party"], "hospital-c", "{r:#}");
    assert!(r["dropped"].as_array().unwrap().len() == 1, "{r:#}");
    let why = r["dropped"][0]["error"].as_str().unwrap();
    assert!(
        why.contains("without a report") && why.contains("fed.peer_lost")
            || why.contains("unreachable"),
        "{why}"
    );
    for p in ["server", "hospital-a", "hospital-b"] {
        assert_eq!(r["parties"][p]["status"], "succeeded", "{p}: {r:#}");
    }
    assert_eq!(r["parties"]["hospital-c"]["status"], "failed");
    let m = &r["tasks"][0]["metrics"];
    assert_eq!(r["tasks"][0]["status"], "succeeded", "{m}");
    assert_eq!(m["rounds"], 40, "{m}");
    assert!(m["auc"].as_f64().unwrap() > 0.9, "{m}");
    assert!(m["dropped_clients"]["hospital-c"].is_string(), "{m}");
    let by_round = m["dropped_clients_by_round"].as_array().unwrap();
    assert_eq!(by_round.len(), 40);
    let rounds: Vec<usize> = (0..40)
        .filter(|&i| {
            by_round[i]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "hospital-c")
        })
        .collect();
    assert!(
        rounds.len() == 1 && rounds[0] >= 3,
        "dropped in rounds {rounds:?}: {m}"
    );
    // Nobody waited for the dead client beyond the peer timeout per round.
    assert!(took < 60.0, "took {took} s after the kill");
}

#[cfg(target_os = "linux")]
#[test]
fn fedavg_goes_on_without_a_client_process_killed_mid_training() {
    let sampling = "{ fraction = 1.0, min_clients = 2, min_available = 2, min_results = 2 }";
    let (status, r, took) = fedavg_with_a_killed_client("hfl-kill-plain", "", sampling);
    assert_finished_without(status, &r, took);
    let sa = "[tasks.secure_aggregation]\nthreshold = 2\nclip = 1.0\nring_bits = 32\n";
    let (status, r, took) = fedavg_with_a_killed_client("hfl-kill-secagg", sa, sampling);
    assert_finished_without(status, &r, took);
    // Whether the kill lands inside a round (a round failure, the sum recovered
    // from the others' shares) or between rounds (excluded before selection)
    // depends on timing; both are reported as the one dropout checked above.
    // The recovery itself is tested deterministically in every phase in
    // fedra-horizontal's protocol tests.
}

#[cfg(target_os = "linux")]
#[test]
fn fedavg_fails_cleanly_naming_the_killed_client_when_too_few_are_left() {
    let sampling = "{ fraction = 1.0, min_clients = 2, min_available = 3, min_results = 2 }";
    let sa = "[tasks.secure_aggregation]\nthreshold = 2\nclip = 1.0\nring_bits = 32\n";
    for (name, extra) in [("hfl-kill-min-plain", ""), ("hfl-kill-min-secagg", sa)] {
        let (status, r, took) = fedavg_with_a_killed_client(name, extra, sampling);
        assert!(!status.success(), "{r:#}");
        assert_eq!(r["status"], "failed", "{r:#}");
        let e = r["parties"]["server"]["error"].as_str().unwrap();
        assert!(
            e.contains("clients left, at least 3 required")
                && e.contains("hospital-c: party 'hospital-c' has been unreachable"),
            "{e}"
        );
        // The surviving clients stop because the server failed, and say so.
        for p in ["hospital-a", "hospital-b"] {
            let e = r["parties"][p]["error"].as_str().unwrap();
            assert!(e.contains("party 'server' failed"), "{p}: {e}");
        }
        assert!(took < 60.0, "took {took} s after the kill");
    }
}

// ---- 50 clients over real gRPC endpoints (one process, 51 mTLS servers) ----

mod fifty {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use bytes::Bytes;
    use fedra_data::Dataset;
    use fedra_federation::mem::{MemChannel, MemNetwork};
    use fedra_federation::{Channel, Failure, FedError, PartyId, PeerStats, Tag};
    use fedra_horizontal::protocol::{
        ClientConfig, DEFAULT_CHUNK_BYTES, Evaluate, LocalTraining, SecAggConfig, ServerConfig,
        ServerOutcome, run_client, run_server,
    };
    use fedra_horizontal::{HorizontalConfig, SamplingConfig, StrategyConfig};
    use fedra_nn::{Mlp, MlpSpec, OptimizerConfig};
    use fedra_pki::{DevCa, Validity};
    use fedra_transport::{GrpcChannel, GrpcConfig, Timing, TlsIdentity};
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    const N: usize = 50;
    /// Clients whose process dies in round 2 before sending their update
    /// (before `delta` in plaintext, before `sa/masked` under secure
    /// aggregation: neither is in round 2's aggregate).
    const DYING: [usize; 3] = [7, 23, 41];

    fn pid(s: &str) -> PartyId {
        PartyId::new(s).unwrap()
    }

    fn name(i: usize) -> String {
        format!("c{i:02}")
    }

    /// 20 rows of 10 features, labels from a fixed linear rule with noise.
    fn data(i: usize) -> Dataset {
        let mut rng = ChaCha20Rng::seed_from_u64(1000 + i as u64);
        let mut unit = || (rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0;
        let (rows, d) = (20, 10);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..rows {
            let r: Vec<f64> = (0..d).map(|_| unit()).collect();
            let s: f64 = r
                .iter()
                .enumerate()
                .map(|(j, v)| v * (j as f64 - 4.5))
                .sum();
            y.push(if s + unit() > 0.0 { 1.0 } else { 0.0 });
            x.extend(r);
        }
        Dataset::new(
            "id",
            (0..rows).map(|r| format!("{i}-{r}")).collect(),
            Some(("y".into(), y)),
            (0..d).map(|j| format!("x{j}")).collect(),
            x,
        )
        .unwrap()
    }

    fn config(secure: bool) -> ServerConfig {
        ServerConfig {
            rounds: 2,
            // Dead clients are noticed by the transport (peer timeout 2 s), not
            // by this deadline.
            round_timeout_s: 120.0,
            clients: None,
            model: MlpSpec::binary(10, vec![16]),
            local: LocalTraining {
                local_epochs: 1,
                batch_size: 8,
                optimizer: OptimizerConfig::sgd(0.05),
            },
            horizontal: HorizontalConfig {
                seed: 11,
                sampling: SamplingConfig {
                    fraction: 1.0,
                    min_clients: 40,
                    min_available: 40,
                    min_results: 40,
                },
                strategy: StrategyConfig::FedAvg,
                aggregation: None,
            },
            secure_aggregation: secure.then_some(SecAggConfig {
                threshold: 26,
                clip: 1.0,
                ring_bits: 32,
                neighbors: None,
            }),
            dp: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        }
    }

    /// A client channel whose process "dies" when it is about to send
    /// message `at` (round, name): `crash` is called and the send fails.
    struct Dying<C> {
        inner: C,
        at: Option<(u64, &'static str)>,
        crash: fn(&C),
    }

    #[async_trait]
    impl<C: Channel> Channel for Dying<C> {
        fn me(&self) -> &PartyId {
            self.inner.me()
        }
        fn job(&self) -> &str {
            self.inner.job()
        }
        fn peers(&self) -> &[PartyId] {
            self.inner.peers()
        }
        async fn send(&self, to: &PartyId, tag: &Tag, payload: Bytes) -> Result<(), FedError> {
            if self.at == Some((tag.round(), tag.name())) {
                (self.crash)(&self.inner);
                return Err(FedError::Closed);
            }
            self.inner.send(to, tag, payload).await
        }
        async fn recv(&self, from: &PartyId, tag: &Tag) -> Result<Bytes, FedError> {
            self.inner.recv(from, tag).await
        }
        async fn abort(&self, failure: &Failure) {
            self.inner.abort(failure).await
        }
        async fn finish(&self) {
            self.inner.finish().await
        }
        fn stats(&self) -> Vec<PeerStats> {
            self.inner.stats()
        }
        fn set_droppable(&self, peers: &[PartyId]) {
            self.inner.set_droppable(peers)
        }
        fn dropped(&self) -> Vec<(PartyId, FedError)> {
            self.inner.dropped()
        }
    }

    type Globals = Arc<Mutex<Vec<Vec<f32>>>>;

    async fn serve(
        ch: impl Channel + 'static,
        cfg: ServerConfig,
    ) -> (fedra_horizontal::Result<ServerOutcome>, Vec<Vec<f32>>) {
        let spec = cfg.model.clone();
        let init = Mlp::new(spec, &mut ChaCha20Rng::seed_from_u64(11))
            .unwrap()
            .params_flat();
        let globals: Globals = Arc::default();
        let g2 = globals.clone();
        let eval: Arc<Evaluate<'static>> = Arc::new(move |_, p: &[f32]| {
            g2.lock().unwrap().push(p.to_vec());
            vec![]
        });
        let out = tokio::spawn(async move {
            let mut rng = ChaCha20Rng::seed_from_u64(5);
            run_server(&ch, "hfl", &cfg, init, None, Some(&*eval), &mut rng).await
        })
        .await
        .unwrap();
        let g = globals.lock().unwrap().clone();
        (out, g)
    }

    fn client(
        ch: impl Channel + 'static,
        i: usize,
        spec: MlpSpec,
    ) -> tokio::task::JoinHandle<bool> {
        tokio::spawn(async move {
            let mut model = Mlp::new(spec, &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(100 + i as u64);
            let cfg = ClientConfig {
                server_timeout_s: 120.0,
                ..ClientConfig::default()
            };
            let r = run_client(
                &ch,
                "hfl",
                &pid("server"),
                &cfg,
                &data(i),
                &mut model,
                &mut rng,
            )
            .await;
            // A dying client's channel is dropped here: its gRPC server and
            // heartbeats stop, as when its process is killed.
            r.is_ok()
        })
    }

    /// Plaintext FedAvg in memory, with the same clients dying.
    async fn plaintext() -> (ServerOutcome, Vec<Vec<f32>>) {
        let cfg = config(false);
        let server = pid("server");
        let clients: Vec<PartyId> = (1..=N).map(|i| pid(&name(i))).collect();
        let mut all = vec![server.clone()];
        all.extend(clients.iter().cloned());
        let mut net = MemNetwork::new("fifty", &all);
        let mut handles = Vec::new();
        for (k, p) in clients.iter().enumerate() {
            let i = k + 1;
            let ch = Dying {
                inner: net.take(p).unwrap(),
                at: DYING.contains(&i).then_some((2, "delta")),
                crash: MemChannel::crash,
            };
            let others: Vec<PartyId> = clients.iter().filter(|q| *q != p).cloned().collect();
            ch.set_droppable(&others);
            handles.push(client(ch, i, cfg.model.clone()));
        }
        let ch = net.take(&server).unwrap();
        ch.set_droppable(&clients);
        let (out, g) = serve(ch, cfg).await;
        for h in handles {
            h.await.unwrap();
        }
        (out.unwrap(), g)
    }

    /// Secure aggregation with 51 gRPC endpoints over mutual TLS on loopback
    /// (a star: each client knows only the server).
    async fn over_grpc() -> (ServerOutcome, Vec<Vec<f32>>, Vec<bool>) {
        let cfg = config(true);
        let ca = DevCa::new(Validity::days(1)).unwrap();
        let identity = |p: &str| {
            let c = ca.issue(p, Validity::days(1)).unwrap();
            TlsIdentity::from_pem(ca.cert_pem(), &c.cert_pem, &c.key_pem).unwrap()
        };
        let names: Vec<String> = std::iter::once("server".to_owned())
            .chain((1..=N).map(name))
            .collect();
        let mut listeners = Vec::new();
        for _ in &names {
            listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let addrs: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().unwrap().to_string())
            .collect();
        let timing = Timing {
            send_timeout: Duration::from_secs(60),
            recv_timeout: None,
            heartbeat_interval: Duration::from_millis(400),
            // 51 endpoints share this process: under a heavily loaded machine (seen
            // at load 6) heartbeats of healthy clients arrived later than 2 s.
            peer_timeout: Duration::from_secs(5),
            startup_grace: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
        };
        let mut channels = Vec::new();
        for ((n, l), _) in names.iter().zip(listeners).zip(&addrs) {
            let peers: BTreeMap<PartyId, String> = if n == "server" {
                names[1..]
                    .iter()
                    .map(|c| pid(c))
                    .zip(addrs[1..].iter().cloned())
                    .collect()
            } else {
                [(pid("server"), addrs[0].clone())].into_iter().collect()
            };
            let mut gc =
                GrpcConfig::new("fifty", pid(n), l.local_addr().unwrap(), peers, identity(n));
            gc.timing = timing.clone();
            channels.push(GrpcChannel::start_on(gc, l).await.unwrap());
        }
        let mut channels = channels.into_iter();
        let server = channels.next().unwrap();
        server.set_droppable(&names[1..].iter().map(|c| pid(c)).collect::<Vec<_>>());
        let mut handles = Vec::new();
        for (k, ch) in channels.enumerate() {
            let i = k + 1;
            let ch = Dying {
                inner: ch,
                at: DYING.contains(&i).then_some((2, "sa/masked")),
                crash: |_| {},
            };
            handles.push(client(ch, i, cfg.model.clone()));
        }
        let (out, g) = serve(server, cfg).await;
        let mut ok = Vec::new();
        for h in handles {
            ok.push(h.await.unwrap());
        }
        (out.unwrap(), g, ok)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_clients_over_grpc_secure_aggregation_with_dropouts_equals_plaintext() {
        let t0 = Instant::now();
        let (sa, sa_globals, ok) = over_grpc().await;
        let grpc_s = t0.elapsed().as_secs_f64();
        let (plain, plain_globals) = plaintext().await;
        eprintln!(
            "50 clients over gRPC + mTLS, secure aggregation, 2 rounds, 3 dying: {grpc_s:.1} s (plaintext in memory {:.1} s)",
            t0.elapsed().as_secs_f64() - grpc_s
        );
        let dying: Vec<String> = DYING.iter().map(|&i| name(i)).collect();
        for (i, ok) in ok.iter().enumerate() {
            assert_eq!(*ok, !DYING.contains(&(i + 1)), "client {}", name(i + 1));
        }
        for out in [&sa, &plain] {
            assert_eq!(out.history[0].contributed.len(), N);
            assert_eq!(out.history[1].contributed.len(), N - DYING.len());
            assert_eq!(out.history[1].dropped_clients, dying);
            assert!(
                out.history[1]
                    .contributed
                    .iter()
                    .all(|c| !dying.contains(c))
            );
        }
        // Round 1: the same inputs, so the secure aggregate is the plaintext
        // one up to the quantisation bound (plus f32 rounding of the sums).
        let maxdiff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| f64::from((x - y).abs()))
                .fold(0.0, f64::max)
        };
        let ulp = |v: &[f32]| {
            2.0 * f64::from(f32::EPSILON) * v.iter().map(|x| f64::from(x.abs())).fold(0.0, f64::max)
        };
        let b1 = sa.history[0].quantization_error.unwrap();
        let d1 = maxdiff(&sa_globals[0], &plain_globals[0]);
        eprintln!("round 1: max |secagg - plaintext| = {d1:e}, bound {b1:e}");
        assert!(d1 <= b1 + ulp(&plain_globals[0]), "{d1} > {b1}");
        // Round 2 starts from globals that differ by d1; one epoch of SGD
        // (lr 0.05, 3 steps) moves that difference by a small factor.
        let b2 = sa.history[1].quantization_error.unwrap();
        let d2 = maxdiff(&sa.params, &plain.params);
        eprintln!("round 2: max |secagg - plaintext| = {d2:e}, bound {b2:e} + propagated {d1:e}");
        assert!(d2 <= b2 + 4.0 * d1 + ulp(&plain.params), "{d2}");
        assert!(grpc_s < 60.0, "took {grpc_s} s");
    }
}

/// `fedra certs` refuses to replace a CA or a party key without `--force`, bounds
/// validity, and refuses a party listed twice; each refusal says why in one line.
#[test]
fn certs_refuse_overwrite_bad_validity_and_duplicate_parties() {
    let dir = tmp("certs");
    let certs = dir.join("certs");
    let run = |args: &[&str]| {
        let o = fedra()
            .args(args)
            .arg("--dir")
            .arg(&certs)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert!(run(&["certs", "init", "--parties", "guest,host"]).0);
    let key = std::fs::read(certs.join("ca.key")).unwrap();
    let (ok, err) = run(&["certs", "init", "--parties", "guest,host"]);
    assert!(
        !ok && err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(std::fs::read(certs.join("ca.key")).unwrap(), key);
    let (ok, err) = run(&["certs", "issue", "--party", "host"]);
    assert!(!ok && err.contains("host.pem: already exists"), "{err}");
    assert!(run(&["certs", "issue", "--party", "host", "--force"]).0);
    assert!(run(&["certs", "init", "--parties", "guest,host", "--force"]).0);
    assert_ne!(std::fs::read(certs.join("ca.key")).unwrap(), key);
    for (args, needle) in [
        (vec!["--days", "0"], "1..=825 days, got 0"),
        (vec!["--days", "100000"], "1..=825 days, got 100000"),
        (vec!["--ca-days", "100000"], "1..=3650 days, got 100000"),
    ] {
        let mut a = vec!["certs", "init", "--parties", "guest,host", "--force"];
        a.extend(args);
        let (ok, err) = run(&a);
        assert!(!ok && err.contains(needle), "{err}");
    }
    let (ok, err) = run(&["certs", "init", "--parties", "guest,guest", "--force"]);
    assert!(!ok && err.contains("listed twice"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
