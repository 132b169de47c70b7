//! A PostgreSQL writer commits the units of work queued to it in groups, but a group stops taking
//! units once its transaction has run for a while (`GROUP_TIME_LIMIT`, 200 ms): what the first
//! units wrote is seen, and answered, without waiting for a long tail of others, and a read of a
//! channel's quantities never waits long for the writes begun before it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stockhub_store::testing::{test_database, TestBackend};
use stockhub_store::{ManualClock, StoreOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_group_commits_its_first_units_before_it_runs_the_last() {
    let Some(db) = test_database(TestBackend::Postgres, "groups") else {
        return;
    };
    let store = stockhub_store::open(
        &db.url,
        Arc::new(ManualClock::new(1_000_000)),
        &StoreOptions {
            writers: 1,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    // A unit that keeps the writer busy while the ten below queue up behind it: they form the
    // next group.
    let busy = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .write(|_| {
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(())
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let units: Vec<_> = (0..10)
        .map(|_| {
            let started = started.clone();
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(move |_| {
                        started.lock().unwrap().push(Instant::now());
                        std::thread::sleep(Duration::from_millis(50));
                        Ok(())
                    })
                    .await
                    .unwrap();
                Instant::now()
            })
        })
        .collect();
    busy.await.unwrap().unwrap();
    let mut answered = Vec::new();
    for unit in units {
        answered.push(unit.await.unwrap());
    }
    let started = started.lock().unwrap().clone();
    assert_eq!(started.len(), 10, "every unit ran once");
    let first_answer = answered.iter().min().unwrap();
    let last_start = started.iter().max().unwrap();
    assert!(
        first_answer < last_start,
        "the first unit of the group was answered only after the last one of ten (50 ms each) \
         had started: the group ran past its time limit"
    );
}
