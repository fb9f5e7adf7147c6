//! The short human report printed after a run.

use std::path::Path;

use fedra_runtime::report::{JobReport, Status};

fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.2} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Succeeded => "succeeded",
        Status::SucceededWithDropouts => "succeeded with dropouts",
        Status::Failed => "FAILED",
        Status::Skipped => "skipped",
    }
}

/// Prints `r` to stdout.
pub fn print(r: &JobReport, path: &Path) {
    println!("job '{}' {} in {:.2} s", r.job, status(r.status), r.wall_s);
    for t in &r.tasks {
        println!(
            "  task {} ({}): {}, {:.2} s",
            t.name,
            t.kind,
            status(t.status),
            t.wall_s
        );
        if !t.metrics.is_empty() {
            let m: Vec<String> = t
                .metrics
                .iter()
                .map(|(k, v)| match v.as_f64() {
                    Some(f) if v.is_f64() => format!("{k}={f:.4}"),
                    _ => format!("{k}={v}"),
                })
                .collect();
            println!("      {}", m.join("  "));
        }
        if let Some(e) = &t.error {
            println!("      error: {e}");
        }
    }
    for (p, s) in &r.parties {
        let t = &s.traffic;
        println!(
            "  party {p}: {}; sent {} in {} messages, received {} in {} (on the wire {} out, {} in)",
            status(s.status),
            bytes(t.bytes_sent),
            t.messages_sent,
            bytes(t.bytes_received),
            t.messages_received,
            bytes(t.wire_bytes_sent),
            bytes(t.wire_bytes_received),
        );
        if let Some(mb) = s.peak_rss_mb {
            println!("      peak memory {mb:.0} MiB");
        }
        if let Some(e) = &s.error {
            println!("      error: {e}");
        }
    }
    for d in &r.dropped {
        println!("  dropped out: party {}: {}", d.party, d.error);
    }
    println!("report: {}", path.display());
}
