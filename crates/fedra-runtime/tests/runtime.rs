//! Jobs end to end in memory: validation errors name their field, real data runs,
//! and a failing party stops every other party with an error naming it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use fedra_federation::mem::MemNetwork;
use fedra_runtime::job::Job;
use fedra_runtime::report::{JobReport, PartyReport, Status};
use fedra_runtime::runner::{PartyContext, run_party};

/// The FATE files, which ship with the repository (data/fate): their absence is a
/// broken checkout, never a reason to pass.
fn datasets() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fate");
    assert!(
        dir.is_dir(),
        "{} is missing: run the tests from a full clone",
        dir.display()
    );
    dir
}

fn invalid(text: &str) -> (String, String) {
    match Job::parse(text, Path::new("/jobs/job.toml")).unwrap_err() {
        fedra_runtime::JobError::Invalid { field, message, .. } => (field, message),
        e => panic!("expected a field error, got {e}"),
    }
}

const PARTIES: &str = r#"
[job]
id = "j"
[parties.guest]
role = "guest"
[parties.host]
role = "host"
"#;

#[test]
fn validation_errors_name_the_field_and_the_allowed_range() {
    let (f, m) = invalid(&format!(
        "{PARTIES}\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\nrounds = 0\n"
    ));
    assert_eq!(f, "tasks[0].rounds");
    assert_eq!(m, "must be in 1..=1000000, got 0");

    let (f, m) = invalid(&format!(
        "{PARTIES}\n[runtime]\npeer_timeout_s = 0.5\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\n"
    ));
    assert_eq!(f, "runtime.peer_timeout_s");
    assert!(m.contains("1..=3600"), "{m}");

    let (f, m) = invalid(&format!(
        "{PARTIES}\n[[tasks]]\nname = \"e\"\nkind = \"magic\"\n"
    ));
    assert_eq!(f, "tasks[0].kind");
    assert!(m.contains("dataset_stats, echo"), "{m}");

    let (f, m) = invalid(&format!(
        "{PARTIES}\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\nround = 3\n"
    ));
    assert_eq!(f, "tasks[0] (e)");
    assert!(m.contains("unknown field `round`"), "{m}");

    let (f, _) = invalid(&format!(
        "{PARTIES}\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\nleader = \"arbiter\"\n"
    ));
    assert_eq!(f, "tasks[0].leader");

    let (f, m) = invalid(&format!(
        "{PARTIES}\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\n"
    ));
    assert_eq!(
        (f.as_str(), m.as_str()),
        ("tasks[1].name", "duplicate task name \"e\"")
    );

    let (f, _) = invalid(&format!(
        "{PARTIES}\n[[tasks]]\nname = \"s\"\nkind = \"dataset_stats\"\n"
    ));
    assert_eq!(f, "parties.guest.data");

    let psi = "[parties.guest.data]\npath = \"g.csv\"\n[parties.host.data]\npath = \"h.csv\"\n[[tasks]]\nname = \"p\"\nkind = \"psi\"\n";
    let (f, m) = invalid(&format!(
        "{PARTIES}{psi}protocol = \"ecdh\"\nleader = \"guest\"\nfollower = \"host\"\nbuckets = 0\n"
    ));
    assert_eq!(
        (f.as_str(), m.as_str()),
        ("tasks[0].buckets", "must be in 1..=65536, got 0")
    );
    let (f, _) = invalid(&format!(
        "{PARTIES}{psi}protocol = \"ecdh\"\nleader = \"guest\"\nfollower = \"guest\"\n"
    ));
    assert_eq!(f, "tasks[0].follower");
    let (f, m) = invalid(&format!(
        "{PARTIES}{psi}protocol = \"rsa\"\nkey_holder = \"host\"\nclient = \"guest\"\ncache = \"c.bin\"\n"
    ));
    assert_eq!(f, "tasks[0].cache");
    assert!(m.contains("persistent `key`"), "{m}");
    let (f, m) = invalid(&format!("{PARTIES}{psi}protocol = \"dh\"\n"));
    assert_eq!(f, "tasks[0] (p)");
    assert!(m.contains("unknown variant `dh`"), "{m}");

    let lr = "[parties.guest.data]\npath = \"g.csv\"\nlabel = \"y\"\n[parties.host.data]\npath = \"h.csv\"\n[[tasks]]\nname = \"lr\"\nkind = \"hetero_lr\"\nguest = \"guest\"\nhosts = [\"host\"]\nobjective = \"logistic\"\nmode = \"no_arbiter\"\n";
    let (f, m) = invalid(&format!("{PARTIES}{lr}max_epochs = 0\n"));
    assert_eq!(f, "tasks[0].max_epochs");
    assert!(m.contains("10000") || m.contains("10_000"), "{m}");
    let (f, _) = invalid(&format!("{PARTIES}{lr}holdout = 0.95\n"));
    assert_eq!(f, "tasks[0].holdout");
    let lr_arb = lr.replace(
        "mode = \"no_arbiter\"",
        "mode = { with_arbiter = { arbiter = \"carol\" } }",
    );
    let (f, m) = invalid(&format!("{PARTIES}{lr_arb}"));
    assert_eq!(f, "tasks[0].mode.with_arbiter.arbiter", "{m}");

    let (f, _) = invalid(
        "[job]\nid = \"Bad Id\"\n[parties.a]\nrole = \"guest\"\n[parties.b]\nrole = \"host\"\n",
    );
    assert_eq!(f, "job.id");

    let (f, _) = invalid(
        "[job]\nid = \"j\"\n[parties.Guest]\nrole = \"guest\"\n[parties.b]\nrole = \"host\"\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\n",
    );
    assert_eq!(f, "parties.Guest");

    // Type errors and unknown keys come from the TOML parser with line and column.
    let e = Job::parse(
        &format!("{PARTIES}\n[parties.guest.extra]\n"),
        Path::new("job.toml"),
    )
    .unwrap_err();
    assert_eq!(e.code(), "job.syntax");
    let e = Job::parse("[job]\nid = 3\n", Path::new("job.toml")).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

async fn run_all(job: &Job, out: &Path) -> Vec<PartyReport> {
    let ids = job.party_ids();
    let mut net = MemNetwork::new(&job.id, &ids);
    let events = |_| {};
    let ctxs: Vec<PartyContext<'_>> = ids
        .iter()
        .map(|me| PartyContext {
            job,
            me: me.clone(),
            data: job.parties[me].data.clone(),
            out_dir: out.to_owned(),
            events: &events,
        })
        .collect();
    let chans: Vec<_> = ids.iter().map(|p| net.take(p).unwrap()).collect();
    let (a, b) = tokio::join!(
        run_party(&ctxs[0], &chans[0]),
        run_party(&ctxs[1], &chans[1])
    );
    vec![a, b]
}

#[tokio::test]
async fn dataset_stats_on_the_breast_vertical_split() {
    let dir = datasets();
    let text = format!(
        r#"[job]
id = "stats"
[parties.guest]
role = "guest"
data = {{ path = "{d}/breast_hetero_guest.csv", label = "y" }}
[parties.host]
role = "host"
data = {{ path = "{d}/breast_hetero_host.csv" }}
[[tasks]]
name = "stats"
kind = "dataset_stats"
require_equal_rows = true
"#,
        d = dir.display()
    );
    let job = Job::parse(&text, Path::new("job.toml")).unwrap();
    let out = std::env::temp_dir().join(format!("fedra-rt-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let reports = run_all(&job, &out).await;
    let merged = JobReport::merge(&job.id, &reports);
    assert_eq!(merged.status, Status::Succeeded, "{merged:?}");
    let m = &merged.tasks[0].metrics;
    assert_eq!(m["rows"], 569);
    assert_eq!(m["features_guest"], 10);
    assert_eq!(m["features_host"], 20);
    // 357 of 569 labels are 1 (datasets README).
    assert!((m["label_mean"].as_f64().unwrap() - 357.0 / 569.0).abs() < 1e-12);
    assert!(merged.parties["guest"].traffic.bytes_sent > 0);
    assert_eq!(
        merged.parties["host"].traffic.messages_received,
        merged.parties["guest"].traffic.messages_sent
    );
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn bad_data_on_one_party_stops_the_other_with_an_error_naming_it() {
    let out = std::env::temp_dir().join(format!("fedra-rt-bad-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("g.csv"), "id,y,x0\n1,0,0.5\n2,1,0.7\n").unwrap();
    std::fs::write(out.join("h.csv"), "id,x0\n1,0.1\n2,oops\n").unwrap();
    let text = format!(
        "[job]\nid = \"bad\"\n[parties.guest]\nrole = \"guest\"\ndata = {{ path = \"{o}/g.csv\", label = \"y\" }}\n\
         [parties.host]\nrole = \"host\"\ndata = {{ path = \"{o}/h.csv\" }}\n\
         [[tasks]]\nname = \"ping\"\nkind = \"echo\"\n[[tasks]]\nname = \"stats\"\nkind = \"dataset_stats\"\n[[tasks]]\nname = \"after\"\nkind = \"echo\"\n",
        o = out.display()
    );
    let job = Job::parse(&text, Path::new("job.toml")).unwrap();
    let reports = run_all(&job, &out).await;
    let (g, h) = (&reports[0], &reports[1]);
    assert_eq!(h.status, Status::Failed);
    let herr = h.error.as_deref().unwrap();
    assert!(herr.contains("line 3, column 2"), "{herr}");
    assert_eq!(g.status, Status::Failed);
    let gerr = g.error.as_deref().unwrap();
    assert!(
        gerr.contains("party 'host' failed in task 'stats'"),
        "{gerr}"
    );
    // Peers learn the class of the failure (its code), not the host's file, position
    // or values: those stay in the host's own report and log.
    assert!(gerr.contains("[data.not_numeric]"), "{gerr}");
    assert!(!gerr.contains("h.csv"), "{gerr}");
    assert!(!gerr.contains(&out.display().to_string()), "{gerr}");
    assert!(
        herr.contains(&out.display().to_string()),
        "the local report keeps the full path: {herr}"
    );
    assert_eq!(g.tasks[0].status, Status::Succeeded);
    assert_eq!(g.tasks[1].status, Status::Failed);
    assert_eq!(g.tasks[2].status, Status::Skipped);
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn parties_with_different_job_files_refuse_to_start() {
    let a = Job::parse(
        &format!("{PARTIES}\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\nrounds = 2\n"),
        Path::new("a.toml"),
    )
    .unwrap();
    let b = Job::parse(
        &format!("{PARTIES}\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\nrounds = 3\n"),
        Path::new("b.toml"),
    )
    .unwrap();
    let ids = a.party_ids();
    let mut net = MemNetwork::new(&a.id, &ids);
    let (g, h) = (net.take(&ids[0]).unwrap(), net.take(&ids[1]).unwrap());
    let events = |_| {};
    let out = std::env::temp_dir();
    let cg = PartyContext {
        job: &a,
        me: ids[0].clone(),
        data: None,
        out_dir: out.clone(),
        events: &events,
    };
    let ch = PartyContext {
        job: &b,
        me: ids[1].clone(),
        data: None,
        out_dir: out,
        events: &events,
    };
    let (rg, rh) = tokio::join!(run_party(&cg, &g), run_party(&ch, &h));
    assert_eq!(rg.status, Status::Failed);
    assert_eq!(rh.status, Status::Failed);
    assert!(rg.error.unwrap().contains("different definition of job"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_psi_with_a_persistent_key_reuses_its_signature_cache() {
    let dir = datasets();
    let out = std::env::temp_dir().join(format!("fedra-rt-rsa-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let key = fedra_psi::RsaPsiKey::generate(2048).unwrap();
    std::fs::write(out.join("key.pem"), &*key.export_private_pem().unwrap()).unwrap();
    let text = format!(
        r#"[job]
id = "rsa"
[parties.guest]
role = "guest"
data = {{ path = "{d}/breast_hetero_guest.csv", label = "y" }}
[parties.host]
role = "host"
data = {{ path = "{d}/breast_hetero_host.csv" }}
[[tasks]]
name = "psi"
kind = "psi"
protocol = "rsa"
key_holder = "host"
client = "guest"
key = "key.pem"
cache = "sign-cache.bin"
"#,
        d = dir.display()
    );
    let job = Job::parse(&text, &out.join("job.toml")).unwrap();
    let first = JobReport::merge(&job.id, &run_all(&job, &out).await);
    assert_eq!(first.status, Status::Succeeded, "{first:?}");
    let m = &first.tasks[0].metrics;
    assert_eq!(m["intersection_size"], 569);
    assert_eq!(
        (m["own_ids_signed"].as_u64(), m["own_ids_cached"].as_u64()),
        (Some(569), Some(0))
    );
    // The second job signs nothing of the host's own set: the offline cache has it all.
    let second = JobReport::merge(&job.id, &run_all(&job, &out).await);
    let m = &second.tasks[0].metrics;
    assert_eq!(m["intersection_size"], 569);
    assert_eq!(
        (m["own_ids_signed"].as_u64(), m["own_ids_cached"].as_u64()),
        (Some(0), Some(569))
    );
    // The cache file is written owner-only (it lists the host's ids) ...
    let cache = out.join("sign-cache.bin");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // ... and a truncated one stops the job with an error naming the file.
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() - 3]).unwrap();
    let reports = run_all(&job, &out).await;
    let third = JobReport::merge(&job.id, &reports);
    assert_eq!(third.status, Status::Failed);
    // The key holder's own report names the file; its peer learns the code only.
    let own = reports.iter().find(|r| r.party == "host").unwrap();
    let e = format!("{:?}", own.error);
    assert!(
        e.contains("sign-cache.bin") && e.contains("truncated"),
        "{e}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// Split NN with two followers (the host's 20 breast features split between two
/// parties) and a leader with labels only: the job form's multi-party path, in
/// memory, each party with its own output folder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splitnn_with_two_followers_and_a_label_only_leader() {
    let dir = datasets();
    let xs = |r: std::ops::Range<usize>| {
        r.map(|i| format!("\"x{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        r#"[job]
id = "snn3"
[parties.guest]
role = "guest"
data = {{ path = "{d}/breast_hetero_guest.csv", label = "y", features = [] }}
[parties.host-a]
role = "host"
data = {{ path = "{d}/breast_hetero_host.csv", features = [{a}] }}
[parties.host-b]
role = "host"
data = {{ path = "{d}/breast_hetero_host.csv", features = [{b}] }}
[[tasks]]
name = "snn"
kind = "splitnn"
leader = "guest"
batch_size = 32
epochs = 20
eval_every = 50
checkpoint_every = 50
[tasks.top]
hidden = [8]
optimizer = {{ kind = "adam", lr = 0.01 }}
[tasks.towers.host-a]
hidden = [16]
cut = 4
optimizer = {{ kind = "adam", lr = 0.01 }}
[tasks.towers.host-b]
hidden = [16]
cut = 6
optimizer = {{ kind = "adam", lr = 0.01 }}
"#,
        d = dir.display(),
        a = xs(0..10),
        b = xs(10..20),
    );
    let job = Job::parse(&text, Path::new("job.toml")).unwrap();
    let root = std::env::temp_dir().join(format!("fedra-rt-snn3-{}", std::process::id()));
    let ids = job.party_ids();
    let mut net = MemNetwork::new(&job.id, &ids);
    let events = |_| {};
    let ctxs: Vec<PartyContext<'_>> = ids
        .iter()
        .map(|me| {
            let out = root.join(me.as_str());
            std::fs::create_dir_all(&out).unwrap();
            PartyContext {
                job: &job,
                me: me.clone(),
                data: job.parties[me].data.clone(),
                out_dir: out,
                events: &events,
            }
        })
        .collect();
    let chans: Vec<_> = ids.iter().map(|p| net.take(p).unwrap()).collect();
    let (a, b, c) = tokio::join!(
        run_party(&ctxs[0], &chans[0]),
        run_party(&ctxs[1], &chans[1]),
        run_party(&ctxs[2], &chans[2])
    );
    let merged = JobReport::merge(&job.id, &[a, b, c]);
    assert_eq!(merged.status, Status::Succeeded, "{merged:?}");
    let m = &merged.tasks[0].metrics;
    // Breast is easy: the followers' features alone separate the classes.
    assert!(m["auc"].as_f64().unwrap() > 0.95, "{m:?}");
    assert_eq!(m["host-a_steps"], m["steps"], "{m:?}");
    assert_eq!(m["host-b_steps"], m["steps"], "{m:?}");
    assert!(m["leak_auc"].as_array().unwrap().len() == 2, "{m:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Only horizontal clients are droppable; a job whose only failures are
/// such clients succeeded "with dropouts", listing them; any other failure
/// (the server, or a client that is not droppable) fails the job.
#[test]
fn merged_report_tolerates_only_droppable_parties() {
    use fedra_runtime::report::{DroppedParty, JobReport, PartyReport, Status};
    let text = "[job]\nid = \"hfl\"\n\
        [parties.server]\nrole = \"server\"\n\
        [parties.a]\nrole = \"client\"\ndata = { path = \"a.csv\", label = \"y\" }\n\
        [parties.b]\nrole = \"client\"\ndata = { path = \"b.csv\", label = \"y\" }\n\
        [[tasks]]\nname = \"fedavg\"\nkind = \"horizontal\"\nserver = \"server\"\nrounds = 2\nround_timeout_s = 10.0\n\
        [tasks.model]\ninputs = 3\nhidden = [4]\noutputs = 1\n\
        [tasks.local]\nlocal_epochs = 1\nbatch_size = 8\noptimizer = { kind = \"sgd\", lr = 0.1 }\n\
        [tasks.horizontal]\nseed = 1\nstrategy = { kind = \"fed_avg\" }\n\
        sampling = { fraction = 1.0, min_clients = 1, min_available = 1, min_results = 1 }\n";
    let job = Job::parse(text, Path::new("job.toml")).unwrap();
    let names: Vec<String> = job
        .droppable_parties()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let ok = |p: &str| {
        let mut r = PartyReport::not_run(&job, p, String::new());
        r.status = Status::Succeeded;
        r.error = None;
        for t in &mut r.tasks {
            t.status = Status::Succeeded;
        }
        r
    };
    let mut server = ok("server");
    server.dropped_peers = vec![DroppedParty {
        party: "b".into(),
        error: "party 'b' has been unreachable for 2.1 s".into(),
    }];
    let dead = PartyReport::not_run(
        &job,
        "b",
        "process ended (signal: 9) without a report".into(),
    );
    let m = JobReport::merge_job(&job, &[server.clone(), ok("a"), dead.clone()]);
    assert_eq!(m.status, Status::SucceededWithDropouts);
    assert_eq!(m.tasks[0].status, Status::Succeeded);
    assert_eq!(m.dropped.len(), 1);
    assert_eq!(m.dropped[0].party, "b");
    assert!(m.dropped[0].error.contains("signal: 9") && m.dropped[0].error.contains("unreachable"));
    assert_eq!(m.parties["b"].status, Status::Failed);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["status"], "succeeded_with_dropouts");
    // The server failing too: failed.
    let bad_server = PartyReport::not_run(&job, "server", "boom".into());
    let m = JobReport::merge_job(&job, &[bad_server, ok("a"), dead.clone()]);
    assert_eq!(m.status, Status::Failed);
    // The server dying alone is never a dropout.
    let dead_server = PartyReport::not_run(&job, "server", "killed".into());
    let m = JobReport::merge_job(&job, &[dead_server, ok("a"), ok("b")]);
    assert_eq!(m.status, Status::Failed);
    assert!(m.dropped.is_empty());
    // Everyone fine: plain success.
    let m = JobReport::merge_job(&job, &[server, ok("a"), ok("b")]);
    assert_eq!(m.status, Status::Succeeded);
}

/// The job form's other objectives, end to end in memory: regression (the
/// guest's `x0` from both parties' other features, as the linear-regression
/// example) and 3-class softmax (a label derived from breast's `y` and the
/// guest's `x0`, written to a temporary file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splitnn_regression_and_multiclass_objectives() {
    let dir = datasets();
    let root = std::env::temp_dir().join(format!("fedra-rt-snn-obj-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    // 3 classes: y + [x0 > 0] over the breast guest rows.
    let text = std::fs::read_to_string(dir.join("breast_hetero_guest.csv")).unwrap();
    let mut csv = String::from("id,class,x1,x2,x3,x4,x5,x6,x7,x8,x9\n");
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let y: u32 = f[1].parse().unwrap();
        let x0: f64 = f[2].parse().unwrap();
        let class = y + u32::from(x0 > 0.0);
        csv.push_str(&format!("{},{class},{}\n", f[0], f[3..].join(",")));
    }
    let multi = root.join("breast_3class_guest.csv");
    std::fs::write(&multi, csv).unwrap();
    let job_text = |id: &str, guest: String, host: &str, objective: &str, epochs: u32| {
        format!(
            r#"[job]
id = "{id}"
[parties.guest]
role = "guest"
data = {guest}
[parties.host]
role = "host"
data = {{ path = "{host}", id_column = "id" }}
[[tasks]]
name = "snn"
kind = "splitnn"
leader = "guest"
batch_size = 64
epochs = {epochs}
eval_every = 1000
[tasks.top]
hidden = [16]
objective = {objective}
optimizer = {{ kind = "adam", lr = 0.005 }}
[tasks.towers.guest]
hidden = [16]
cut = 8
optimizer = {{ kind = "adam", lr = 0.005 }}
[tasks.towers.host]
hidden = [16]
cut = 8
optimizer = {{ kind = "adam", lr = 0.005 }}
"#
        )
    };
    // Regression on 30,000 rows, one epoch: clearly better than predicting the mean.
    let reg = job_text(
        "snn-reg",
        format!(
            "{{ path = \"{}\", id_column = \"id\", label = \"x0\", features = [\"x1\", \"x2\", \"x3\", \"x4\", \"x5\", \"x6\", \"x7\", \"x8\", \"x9\", \"x10\", \"x11\", \"x12\"] }}",
            dir.join("default_credit_hetero_guest.csv").display()
        ),
        &dir.join("default_credit_hetero_host.csv")
            .display()
            .to_string(),
        "\"regression\"",
        1,
    );
    let job = Job::parse(&reg, &root.join("reg.toml")).unwrap();
    let out = root.join("reg");
    std::fs::create_dir_all(&out).unwrap();
    let r = JobReport::merge(&job.id, &run_all(&job, &out).await);
    assert_eq!(r.status, Status::Succeeded, "{r:?}");
    let m = &r.tasks[0].metrics;
    let r2 = m["r2"].as_f64().unwrap();
    eprintln!("regression: r2 {r2}, rmse {}", m["rmse"]);
    assert!(r2 > 0.3 && m["rmse"].as_f64().unwrap() > 0.0, "{m:?}");
    // 3 classes on breast: well above the majority class.
    let mc = job_text(
        "snn-mc",
        format!(
            "{{ path = \"{}\", id_column = \"id\", label = \"class\" }}",
            multi.display()
        ),
        &dir.join("breast_hetero_host.csv").display().to_string(),
        "{ multiclass = { classes = 3 } }",
        30,
    );
    let job = Job::parse(&mc, &root.join("mc.toml")).unwrap();
    let out = root.join("mc");
    std::fs::create_dir_all(&out).unwrap();
    let r = JobReport::merge(&job.id, &run_all(&job, &out).await);
    assert_eq!(r.status, Status::Succeeded, "{r:?}");
    let m = &r.tasks[0].metrics;
    let acc = m["accuracy"].as_f64().unwrap();
    eprintln!("3 classes: accuracy {acc}, log loss {}", m["log_loss"]);
    assert!(acc > 0.7, "{m:?}");
    assert!(m["log_loss"].as_f64().unwrap() < 1.0, "{m:?}");
    // A label outside 0..classes is refused with an error, not a panic.
    let bad = job_text(
        "snn-mc-bad",
        format!(
            "{{ path = \"{}\", id_column = \"id\", label = \"class\" }}",
            multi.display()
        ),
        &dir.join("breast_hetero_host.csv").display().to_string(),
        "{ multiclass = { classes = 2 } }",
        1,
    );
    let job = Job::parse(&bad, &root.join("bad.toml")).unwrap();
    let out = root.join("bad");
    std::fs::create_dir_all(&out).unwrap();
    let r = JobReport::merge(&job.id, &run_all(&job, &out).await);
    assert_ne!(r.status, Status::Succeeded, "{r:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Aligned data and statistics are written durably and owner-only, and no scratch
/// or temporary file is left beside them.
#[cfg(unix)]
#[tokio::test]
async fn outputs_are_private_and_leave_no_temporary_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = datasets();
    let text = format!(
        r#"[job]
id = "outputs"
[parties.guest]
role = "guest"
data = {{ path = "{d}/breast_hetero_guest.csv", label = "y" }}
[parties.host]
role = "host"
data = {{ path = "{d}/breast_hetero_host.csv" }}
[[tasks]]
name = "psi"
kind = "psi"
protocol = "ecdh"
leader = "guest"
follower = "host"
[[tasks]]
name = "stats"
kind = "dataset_stats"
"#,
        d = dir.display()
    );
    let job = Job::parse(&text, Path::new("job.toml")).unwrap();
    let root = std::env::temp_dir().join(format!("fedra-rt-out-{}", std::process::id()));
    let ids = job.party_ids();
    let mut net = MemNetwork::new(&job.id, &ids);
    let events = |_| {};
    let ctxs: Vec<PartyContext<'_>> = ids
        .iter()
        .map(|me| {
            let out = root.join(me.as_str());
            std::fs::create_dir_all(&out).unwrap();
            PartyContext {
                job: &job,
                me: me.clone(),
                data: job.parties[me].data.clone(),
                out_dir: out,
                events: &events,
            }
        })
        .collect();
    let chans: Vec<_> = ids.iter().map(|p| net.take(p).unwrap()).collect();
    let (a, b) = tokio::join!(
        run_party(&ctxs[0], &chans[0]),
        run_party(&ctxs[1], &chans[1])
    );
    let merged = JobReport::merge(&job.id, &[a, b]);
    assert_eq!(merged.status, Status::Succeeded, "{merged:?}");
    for p in &ids {
        let out = root.join(p.as_str());
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["psi.aligned.csv", "stats.stats.json"], "{p}");
        for n in &names {
            let mode = std::fs::metadata(out.join(n)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{p}/{n}");
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// The job digest (what the parties compare at start-up) of jobs covering every task
/// kind, as computed by the code before the task-kind registry (commit a7f80e0): the
/// parameters of each kind must serialise exactly as before. Since then, paths enter
/// the digest as written (the RSA case's value changed for that reason alone).
#[test]
fn job_digests_are_those_of_the_pre_registry_code() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "/jobs/quickstart-job.toml",
            r#"[job]
id = "quickstart"
description = "Wire check, PSI, joint statistics and SecureBoost on the default_credit vertical split"
[parties.guest]
role = "guest"
data = { path = "../../data/fate/default_credit_hetero_guest.csv", id_column = "id", label = "y" }
[parties.host]
role = "host"
data = { path = "../../data/fate/default_credit_hetero_host.csv", id_column = "id" }
[[tasks]]
name = "wire-check"
kind = "echo"
rounds = 5
payload_bytes = 1048576
[[tasks]]
name = "psi"
kind = "psi"
protocol = "ecdh"
leader = "guest"
follower = "host"
[[tasks]]
name = "joint-stats"
kind = "dataset_stats"
require_equal_rows = true
[[tasks]]
name = "secureboost"
kind = "secureboost"
holdout = 0.2
guest = "guest"
hosts = ["host"]
objective = "binary"
trees = 10
max_depth = 4
learning_rate = 0.3
scheme = "ou"
"#,
            "97d7e0c7d8b67f92da3e52b802b686188be6a35acc860925f91e0fee568ca6dc",
        ),
        (
            "/jobs/fedavg-breast-job.toml",
            r#"[job]
id = "fedavg-breast"
[parties.server]
role = "server"
data = { path = "../../data/fate/breast_homo_test.csv", id_column = "id", label = "y" }
[parties.hospital-a]
role = "client"
data = { path = "../../data/fate/breast_homo_guest.csv", id_column = "id", label = "y" }
[parties.hospital-b]
role = "client"
data = { path = "../../data/fate/breast_homo_host.csv", id_column = "id", label = "y" }
[[tasks]]
name = "fedavg"
kind = "horizontal"
server = "server"
rounds = 30
round_timeout_s = 300.0
[tasks.model]
inputs = 30
hidden = [128, 128, 128]
outputs = 1
activation = "tanh"
[tasks.local]
local_epochs = 1
batch_size = 32
optimizer = { kind = "adam", lr = 0.0001 }
[tasks.horizontal]
seed = 42
strategy = { kind = "fed_avg" }
sampling = { fraction = 1.0, min_clients = 2, min_available = 2, min_results = 2 }
"#,
            "5a6244d0d60f98090e0c513b14a985f4f5c4b1d8fe7907a1de968f292807fd5f",
        ),
        (
            "/jobs/secureboost-breast-job.toml",
            r#"[job]
id = "secureboost-breast"
[parties.guest]
role = "guest"
data = { path = "../../data/fate/breast_hetero_guest.csv", id_column = "id", label = "y" }
[parties.host]
role = "host"
data = { path = "../../data/fate/breast_hetero_host.csv", id_column = "id" }
[[tasks]]
name = "psi"
kind = "psi"
protocol = "ecdh"
leader = "guest"
follower = "host"
[[tasks]]
name = "sb"
kind = "secureboost"
holdout = 0.2
split_seed = 42
guest = "guest"
hosts = ["host"]
objective = "binary"
trees = 30
max_depth = 4
learning_rate = 0.3
privacy = "complete_secure"
"#,
            "bfb0fd6da16fe9e1868b1a433e0cda7449e77b18549d97019674252cc2e352c4",
        ),
        (
            "/jobs/splitnn-criteo-job.toml",
            r#"[job]
id = "splitnn-criteo"
[parties.guest]
role = "guest"
data = { path = "../../data/ctr/criteo_sample.txt", row_ids = true, label = "label", features = ["I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "I9", "I10", "I11", "I12", "I13"], missing = { fill = 0.0 } }
[parties.host]
role = "host"
data = { path = "../../data/ctr/criteo_sample.txt", row_ids = true, features = [], categorical = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10", "C11", "C12", "C13", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21", "C22", "C23", "C24", "C25", "C26"] }
[[tasks]]
name = "snn"
kind = "splitnn"
holdout = 0.2
split_seed = 42
leader = "guest"
batch_size = 32
epochs = 5
eval_every = 10
shuffle_seed = 7
init_seed = 1
checkpoint_every = 10
[tasks.top]
hidden = [32]
objective = "binary"
[tasks.towers.guest]
hidden = [32]
cut = 16
dense_transform = "log1p"
[tasks.towers.host]
hidden = [32]
cut = 16
sparse = { fields = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9", "C10", "C11", "C12", "C13", "C14", "C15", "C16", "C17", "C18", "C19", "C20", "C21", "C22", "C23", "C24", "C25", "C26"], rows = 65536, dim = 8 }
"#,
            "682384354ad39a9d99cab8f3309572015c81c5646028eb0c99b99ca0b1807799",
        ),
        (
            "/jobs/stream-join-avazu-job.toml",
            r#"[job]
id = "stream-join-avazu"
[parties.guest]
role = "guest"
data = { path = "../../data/ctr/avazu_sample.txt", id_column = "id", label = "click", features = ["hour", "C1", "banner_pos", "C14", "C15", "C16"] }
[parties.host]
role = "host"
data = { path = "../../data/ctr/avazu_sample.txt", id_column = "id", features = ["hour", "device_type", "device_conn_type", "C17", "C18", "C19", "C20", "C21"] }
[[tasks]]
name = "join"
kind = "stream_join"
leader = "guest"
follower = "host"
time_column = "hour"     # YYMMDDHH in this sample; same-hour events join
window_s = 0
batch = 32
[[tasks]]
name = "joined-stats"
kind = "dataset_stats"
require_equal_rows = true
"#,
            "710915e1d9a5fcc3165acf47b8974aa23a881181259daf2c87748724e754da2c",
        ),
        (
            "/work/h3-scratch/jobs/rsa.toml",
            r#"[job]
id = "rsa"
[parties.guest]
role = "guest"
data = { path = "g.csv" }
[parties.host]
role = "host"
data = { path = "h.csv" }
[[tasks]]
name = "p"
kind = "psi"
protocol = "rsa"
key_holder = "host"
client = "guest"
key = "k.pem"
cache = "c.bin"
output = "client_only"
write = "parquet"
[[tasks]]
name = "e"
kind = "echo"
leader = "host"
rounds = 4
[[tasks]]
name = "j"
kind = "stream_join"
leader = "guest"
follower = "host"
time_column = "t"
window_s = 3
[[tasks]]
name = "pr"
kind = "hetero_lr_predict"
guest = "guest"
models = { guest = "g.json", host = "h.json" }
[[tasks]]
name = "st"
kind = "dataset_stats"
require_equal_rows = true
"#,
            // Changed on purpose since: the digest now covers the key and cache paths as
            // written, not resolved against the job's folder (the pre-registry value
            // was 3e31e676b4270701aa261b44d35c2d0dd51ec6f30ae2cfaa26e4ab79ef55431e).
            "a31168b9d7c7223db62028f9b970c48f77e635ec9fd97601aa13d381240dc5ea",
        ),
        (
            "/work/h3-scratch/jobs/lrarb.toml",
            r#"[job]
id = "lrarb"
[parties.guest]
role = "guest"
data = { path = "g.csv", label = "y" }
[parties.host]
role = "host"
data = { path = "h.csv" }
[parties.arb]
role = "arbiter"
[[tasks]]
name = "lr"
kind = "hetero_lr"
guest = "guest"
hosts = ["host"]
objective = "logistic"
mode = { with_arbiter = { arbiter = "arb" } }
holdout = 0.3
split_seed = 7
stratify = false
"#,
            "05a61df2dadde8090578b05b03a26f6a9f89312b91b208c822ad42d8fb2e71ba",
        ),
    ];
    for (path, text, digest) in cases {
        let job = Job::parse(text, Path::new(path)).unwrap();
        assert_eq!(job.digest, *digest, "{path}");
    }
}

/// The digest covers the job as written: the same file in two organizations' folders
/// (relative RSA key and cache paths, model files) gives the same digest, while any
/// change to a path as written changes it.
#[test]
fn the_same_job_file_from_two_folders_has_one_digest() {
    let text = r#"[job]
id = "two-folders"
[parties.guest]
role = "guest"
data = { path = "g.csv", id_column = "id", label = "y" }
[parties.host]
role = "host"
data = { path = "h.csv", id_column = "id" }
[[tasks]]
name = "p"
kind = "psi"
protocol = "rsa"
key_holder = "host"
client = "guest"
key = "keys/k.pem"
cache = "cache/c.bin"
[[tasks]]
name = "pred"
kind = "hetero_lr_predict"
guest = "guest"
models = { guest = "../models/g.json", host = "../models/h.json" }
"#;
    let a = Job::parse(text, Path::new("/srv/bank/jobs/job.toml")).unwrap();
    let b = Job::parse(text, Path::new("/home/telco/fedra/job.toml")).unwrap();
    assert_eq!(a.digest, b.digest);
    let c = Job::parse(
        &text.replace("cache/c.bin", "cache/other.bin"),
        Path::new("/srv/bank/jobs/job.toml"),
    )
    .unwrap();
    assert_ne!(a.digest, c.digest);
}

/// Paths the shared job file gives for files a party writes or keys it reads (the RSA
/// key and signature cache) stay inside the job's folder; party ids are names TLS
/// accepts.
#[test]
fn rsa_paths_are_confined_and_party_ids_are_tls_names() {
    let psi = "[parties.guest.data]\npath = \"g.csv\"\n[parties.host.data]\npath = \"h.csv\"\n[[tasks]]\nname = \"p\"\nkind = \"psi\"\nprotocol = \"rsa\"\nkey_holder = \"host\"\nclient = \"guest\"\n";
    for (field, bad) in [
        ("cache", "key = \"k.pem\"\ncache = \"/etc/fedra/c.bin\"\n"),
        (
            "cache",
            "key = \"k.pem\"\ncache = \"../../elsewhere/c.bin\"\n",
        ),
        ("key", "key = \"/root/.ssh/id_rsa\"\n"),
        ("key", "key = \"keys/../../k.pem\"\n"),
    ] {
        let (f, m) = invalid(&format!("{PARTIES}{psi}{bad}"));
        assert_eq!(f, format!("tasks[0].{field}"), "{bad}");
        assert!(m.contains("inside the job's folder"), "{m}");
    }
    let (f, m) = invalid(
        "[job]\nid = \"j\"\n[parties.123]\nrole = \"guest\"\n[parties.host]\nrole = \"host\"\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\n",
    );
    assert_eq!(f, "parties.123", "{m}");
    assert!(m.contains("starting with a letter"), "{m}");
    // The per-peer queue cap holds at least one largest message.
    let (f, m) = invalid(&format!(
        "{PARTIES}\n[runtime]\nmax_queued_mb = 10\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\n"
    ));
    assert_eq!(f, "runtime.max_queued_mb");
    assert_eq!(m, "must be in 1024..=65536, got 10");
    let ok = Job::parse(
        &format!(
            "{PARTIES}\n[runtime]\nmax_queued_mb = 4096\n[[tasks]]\nname = \"e\"\nkind = \"echo\"\n"
        ),
        Path::new("/j/job.toml"),
    )
    .unwrap();
    assert_eq!(ok.runtime.max_queued_bytes(), 4096 << 20);
}

/// SecureBoost without encryption is refused unless the job acknowledges it; when it
/// runs, the report says so and counts no encryptions.
#[tokio::test]
async fn the_insecure_mode_is_refused_without_acknowledgement_and_loud_with_it() {
    let dir = datasets();
    let text = |ack: &str| {
        format!(
            r#"[job]
id = "insecure"
{ack}
[parties.guest]
role = "guest"
data = {{ path = "{d}/breast_hetero_guest.csv", label = "y" }}
[parties.host]
role = "host"
data = {{ path = "{d}/breast_hetero_host.csv" }}
[[tasks]]
name = "sb"
kind = "secureboost"
guest = "guest"
hosts = ["host"]
objective = "binary"
trees = 2
max_depth = 2
scheme = "insecure_plaintext"
"#,
            d = dir.display()
        )
    };
    let (f, m) = invalid(&text(""));
    assert_eq!(f, "tasks[0].scheme");
    assert!(m.contains("allow_insecure = true"), "{m}");
    let job = Job::parse(
        &text("[runtime]\nallow_insecure = true"),
        Path::new("job.toml"),
    )
    .unwrap();
    let out = std::env::temp_dir().join(format!("fedra-rt-insecure-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let reports = run_all(&job, &out).await;
    let merged = JobReport::merge(&job.id, &reports);
    assert_eq!(merged.status, Status::Succeeded, "{merged:?}");
    for r in &reports {
        let m = &r.tasks[0].metrics;
        assert_eq!(m["insecure"], true, "{m:?}");
        assert_eq!(m["scheme"], "insecure_plaintext");
        assert!(!m.keys().any(|k| k.contains("encryptions")), "{m:?}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

/// What a failed party tells its peers carries its error code and a category, never
/// its raw data: for each class of data error, the other party's report contains none
/// of the offending values (ids, cells, column names, labels, folders).
#[tokio::test]
async fn peers_learn_the_failure_but_none_of_the_failed_partys_values() {
    let root = std::env::temp_dir().join(format!("fedra-rt-public-{}", std::process::id()));
    let secret_dir = root.join("secret-folder-of-host");
    std::fs::create_dir_all(&secret_dir).unwrap();
    let good_guest = "id,y,x0\n1,0,0.5\n2,1,0.7\n175,0,0.1\n";
    let cases: &[(&str, &str, &str, &str, &[&str])] = &[
        // (failing party, guest file, host file, label of the guest, values that must not leak)
        (
            "host",
            good_guest,
            "id,x0\n1,1\n175,2\n175,3\n",
            "y",
            &["175", "secret-folder-of-host"],
        ),
        (
            "host",
            good_guest,
            "id,x0\n1,1\n2,oops\n",
            "y",
            &["oops", "secret-folder-of-host"],
        ),
        ("host", good_guest, "id,x0\n1,1\n2,1e400\n", "y", &["1e400"]),
        (
            "guest",
            "id,private_income,private_age\n1,5,6\n",
            "id,x0\n1,1\n",
            "y",
            &["private_income", "private_age"],
        ),
    ];
    for (i, (failing, guest, host, label, secrets)) in cases.iter().enumerate() {
        let dir = secret_dir.join(format!("case{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("g.csv"), guest).unwrap();
        std::fs::write(dir.join("h.csv"), host).unwrap();
        let text = format!(
            "[job]\nid = \"public\"\n[parties.guest]\nrole = \"guest\"\n\
             data = {{ path = \"g.csv\", label = \"{label}\" }}\n\
             [parties.host]\nrole = \"host\"\ndata = {{ path = \"h.csv\" }}\n\
             [[tasks]]\nname = \"stats\"\nkind = \"dataset_stats\"\n"
        );
        let job = Job::parse(&text, &dir.join("job.toml")).unwrap();
        let reports = run_all(&job, &dir.join("out")).await;
        let (own, peer): (Vec<_>, Vec<_>) = reports.iter().partition(|r| r.party == *failing);
        let own_err = own[0].error.clone().unwrap_or_default();
        let peer_err = peer[0].error.clone().unwrap_or_default();
        // The failing party's own report keeps the detail...
        assert!(
            secrets.iter().any(|s| own_err.contains(s)),
            "case {i}: {own_err}"
        );
        // ...its peer learns who failed, where and the code, and nothing else.
        assert!(
            peer_err.contains(&format!("party '{failing}' failed in task 'stats'")),
            "case {i}: {peer_err}"
        );
        assert!(peer_err.contains("[data."), "case {i}: {peer_err}");
        for s in *secrets {
            assert!(!peer_err.contains(s), "case {i}: {s:?} leaked: {peer_err}");
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}
