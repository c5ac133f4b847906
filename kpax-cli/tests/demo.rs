//! The README's main job: `kpax demo` runs kpax's producer and consumer
//! against the in-process fake cluster, end to end, as a user runs it.

use std::process::Command;

#[test]
fn demo_round_trips_through_the_fake_cluster() {
    let out = Command::new(env!("CARGO_BIN_EXE_kpax"))
        .args(["demo", "20000", "64"])
        .output()
        .expect("run kpax demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kpax demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("produced 20000 records of 64 B"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rode through broker ") && stdout.contains("partition leaders moved"),
        "{stdout}"
    );
    assert!(
        stdout.contains("every record read back exactly once, in order per partition, despite the broker outage"),
        "{stdout}"
    );
}

#[test]
fn demo_rejects_bad_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_kpax"))
        .args(["demo", "lots"])
        .output()
        .expect("run kpax demo");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'lots'"));
}
