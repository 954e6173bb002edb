//! The bench's smoke run, so CI keeps the suite working: a few seconds of every section on
//! real PostgreSQL and NATS. It checks that the suite runs and writes its report, never how
//! fast anything was (no timed assertions: the machine is shared).
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn the_smoke_run_measures_every_section_and_writes_its_report() {
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-smoke-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--smoke", "--out"])
        .arg(&out)
        .status()
        .expect("the bench binary runs");
    assert!(
        status.success(),
        "bench --smoke failed; see its output above"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("smoke.json")).unwrap()).unwrap();
    assert_eq!(report["failures"], serde_json::json!([]));
    assert!(report["throughput"][0]["steps"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));
    let half = &report["latency"][0]["half_load"];
    assert!(half["placement"]["count"].as_u64().unwrap() > 0);
    assert!(half["placed_to_kitchen"]["count"].as_u64().unwrap() > 0);
    assert!(half["cpu"]["orders"].as_u64().unwrap() > 0);
    assert!(report["rebuild"]["runs"][0]["events"].as_u64().unwrap() >= 1_200);
    let estimator = &report["estimator"][0];
    assert_eq!(estimator["open_tickets"].as_u64(), Some(50));
    assert!(estimator["whole_queue_ms"].as_f64().unwrap() > 0.0);
    assert!(estimator["kept_copy_ms"].as_f64().unwrap() > 0.0);
    assert!(report["fanout"][0]["clients_connected"].as_u64().unwrap() > 0);
    assert!(report["fanout"][0]["messages_delivered"].as_u64().unwrap() > 0);
    assert!(!report["baselines"]["nats"].as_array().unwrap().is_empty());
    let names: Vec<&str> = report["summary"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        names.contains(&"orders/s sustained end to end"),
        "{names:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
