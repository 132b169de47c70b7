//! An idle PostgreSQL store costs next to no CPU: the thread that listens for other processes'
//! commits waits for them; it does not spin once a second has passed without one.

#![cfg(target_os = "linux")]

use std::sync::Arc;
use std::time::Duration;

use stockhub_store::testing::{add_locations, test_database, TestBackend};
use stockhub_store::{ManualClock, StoreOptions};

/// CPU time, in clock ticks, used so far by this process's threads named `name`.
fn cpu_ticks_of_threads(name: &str) -> u64 {
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // After the command's closing parenthesis: state, then 10 fields, then utime and stime.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    ticks
}

#[test]
fn an_idle_store_listens_without_spinning() {
    let Some(db) = test_database(TestBackend::Postgres, "idle") else {
        return;
    };
    let store = stockhub_store::open(
        &db.url,
        Arc::new(ManualClock::new(1_000_000)),
        &StoreOptions::default(),
    )
    .unwrap();
    // A commit, announced and heard; then more than the listener's one-second wait passes.
    store
        .write_blocking(|sql| add_locations(sql, &["a"]))
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    // The thread names are cut to 15 bytes by the kernel.
    let name = "postgres-listen";
    let before = cpu_ticks_of_threads(name);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks_of_threads(name) - before;
    // A thread that waits uses nothing measurable in 3 s (a tick is 10 ms); one that spins uses
    // most of a core, hundreds of ticks even on a busy machine.
    assert!(
        used < 20,
        "the listener used {used} ticks of CPU in 3 idle seconds"
    );
    drop(store);
}
