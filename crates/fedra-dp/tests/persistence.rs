//! Saving and loading the accountant: exact round trip, atomic replacement, and clear
//! errors (naming the file) for missing, corrupted or inconsistent state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use fedra_dp::{Accountant, DpError, Event};

fn sample() -> Accountant {
    let mut acc = Accountant::new();
    for (sigma, q, steps) in [
        (1.1, 0.01, 3000),
        (0.1 + 0.2, 256.0 / 60000.0, 7), // awkward decimals must survive exactly
        (2.0, 0.02, 1000),
        (0.0, 0.5, 1), // σ = 0: infinite RDP, which JSON cannot hold
        (1.0, 1.0, 2),
    ] {
        acc.record(Event {
            noise_multiplier: sigma,
            sampling_rate: q,
            steps,
        })
        .unwrap();
    }
    acc
}

#[test]
fn round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    let mut acc = Accountant::new();
    acc.record(Event {
        noise_multiplier: 1.1,
        sampling_rate: 0.01,
        steps: 100,
    })
    .unwrap();
    acc.record(Event {
        noise_multiplier: 0.1 + 0.2,
        sampling_rate: 256.0 / 60000.0,
        steps: 7,
    })
    .unwrap();
    acc.save(&path).unwrap();
    let back = Accountant::load(&path).unwrap();
    assert_eq!(back, acc);
    assert_eq!(back.events(), acc.events());
    let bits = |a: &Accountant| a.rdp().iter().map(|r| r.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&acc));
    assert_eq!(back.epsilon(1e-5).unwrap(), acc.epsilon(1e-5).unwrap());
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("budget.json")]);
}

#[test]
fn infinite_budget_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    let acc = sample();
    assert_eq!(acc.epsilon(1e-5).unwrap().epsilon, f64::INFINITY);
    acc.save(&path).unwrap();
    let back = Accountant::load(&path).unwrap();
    assert_eq!(back.epsilon(1e-5).unwrap().epsilon, f64::INFINITY);
    assert_eq!(back.events().len(), 5);
}

#[test]
fn resumed_accountant_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let round = Event {
        noise_multiplier: 1.1,
        sampling_rate: 0.01,
        steps: 600,
    };
    let mut uninterrupted = Accountant::new();
    for _ in 0..10 {
        uninterrupted.record(round).unwrap();
    }
    let mut server = Accountant::new();
    for i in 0..10 {
        server.record(round).unwrap();
        if i % 3 == 0 {
            // "Restart": persist, drop, reload.
            server.save(&path).unwrap();
            server = Accountant::load(&path).unwrap();
        }
    }
    assert_eq!(
        server.epsilon(1e-5).unwrap(),
        uninterrupted.epsilon(1e-5).unwrap()
    );
    assert!((server.epsilon(1e-5).unwrap().epsilon - 4.2465987368746765).abs() < 1e-9);
}

#[test]
fn save_replaces_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    std::fs::write(&path, "old content").unwrap();
    sample().save(&path).unwrap();
    assert_eq!(Accountant::load(&path).unwrap(), sample());
}

#[test]
fn saved_file_is_readable_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    sample().save(&path).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["format"], "fedra-dp.accountant");
    assert_eq!(v["version"], 1);
    assert_eq!(v["neighbouring_relation"], "add_or_remove_one");
    assert_eq!(v["orders"].as_array().unwrap().len(), 156);
    assert_eq!(v["events"][0]["steps"], 3000);
}

fn malformed(path: &std::path::Path, text: &str) -> (DpError, String) {
    std::fs::write(path, text).unwrap();
    let e = Accountant::load(path).unwrap_err();
    // The file is never modified by a failed load.
    assert_eq!(std::fs::read_to_string(path).unwrap(), text);
    let msg = e.to_string();
    (e, msg)
}

#[test]
fn corrupted_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    let good = serde_json::to_string_pretty(&sample()).unwrap();

    // Truncated (e.g. a crash of a non-atomic writer, or a disk problem).
    let (e, msg) = malformed(&path, &good[..good.len() / 2]);
    assert_eq!(e.code(), "dp.malformed_state");
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(
        matches!(e, DpError::MalformedState { at: Some(_), .. }),
        "{msg}"
    );

    // Not JSON at all.
    let (e, _) = malformed(&path, "\u{0}\u{1}binary");
    assert_eq!(e.code(), "dp.malformed_state");

    // Empty.
    let (e, _) = malformed(&path, "");
    assert_eq!(e.code(), "dp.malformed_state");

    // Valid JSON, wrong content.
    let (_, msg) = malformed(&path, &good.replace("\"version\": 1", "\"version\": 2"));
    assert!(msg.contains("version 2 is not supported"), "{msg}");
    let (_, msg) = malformed(
        &path,
        &good.replace("fedra-dp.accountant", "something-else"),
    );
    assert!(msg.contains("format"), "{msg}");
    let (_, msg) = malformed(&path, &good.replace("add_or_remove_one", "replace_one"));
    assert!(msg.contains("neighbouring relation"), "{msg}");
    let (_, msg) = malformed(&path, &good.replace("\"steps\": 7", "\"steps\": 0"));
    assert!(msg.contains("events[1]") && msg.contains("steps"), "{msg}");
    let (_, msg) = malformed(&path, &good.replace("\"steps\": 7", "\"steps\": -7"));
    assert!(msg.contains("line"), "{msg}");
    let (_, msg) = malformed(
        &path,
        &good.replace("\"sampling_rate\": 1.0", "\"sampling_rate\": 1.5"),
    );
    assert!(
        msg.contains("sampling_rate") && msg.contains("(0, 1]"),
        "{msg}"
    );
    let (_, msg) = malformed(&path, &good.replacen("\"steps\"", "\"stepz\"", 1));
    assert!(msg.contains("stepz"), "{msg}");
    let (_, msg) = malformed(&path, &good.replacen("1.1,", "0.5,", 1));
    assert!(msg.contains("orders"), "{msg}");
}

#[test]
fn missing_file_and_unwritable_directory_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let e = Accountant::load(&missing).unwrap_err();
    assert_eq!(e.code(), "dp.io");
    match &e {
        DpError::Io { path, source, .. } => {
            assert_eq!(path, &missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let target = dir.path().join("no-such-dir").join("budget.json");
    let e = sample().save(&target).unwrap_err();
    assert_eq!(e.code(), "dp.io");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
}

#[cfg(unix)]
#[test]
fn saved_state_is_owner_only_and_leaves_no_temporary() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    sample().save(&path).unwrap();
    sample().save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
