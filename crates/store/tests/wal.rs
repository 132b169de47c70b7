//! The embedded backend's write-ahead log under steady writes: it must start over from its
//! beginning now and then, not grow for as long as writes keep coming.

use std::sync::Arc;
use std::time::Duration;

use stockhub_store::sqlite::{SqliteBackend, SqliteOptions};
use stockhub_store::{args, Store, SystemClock};

/// Rows written, each filling a page of its own, so the WAL receives at least this many frames.
const ROWS: usize = 6_000;
const WRITERS: usize = 8;
/// Bytes per row: more than half a 4 KiB page, so no two rows share a page.
const ROW_BYTES: usize = 3_000;
/// One WAL frame: a page and its 24-byte header.
const FRAME_BYTES: u64 = 4_096 + 24;

#[test]
fn steady_writes_keep_the_wal_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let backend = SqliteBackend::open(
        &path,
        Arc::new(SystemClock),
        SqliteOptions {
            checkpoint_interval: Duration::from_millis(5),
            wal_restart_frames: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let store = Store::new(Arc::new(backend));
    store
        .write_blocking(|sql| {
            sql.execute(
                "CREATE TABLE wal_filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
                &[],
            )
        })
        .unwrap();

    // Several writers keep the single writer thread busy, so commits follow each other without
    // a pause in which a plain checkpoint could catch up.
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let store = store.clone();
            scope.spawn(move || {
                for i in (w..ROWS).step_by(WRITERS) {
                    store
                        .write_blocking(move |sql| {
                            sql.execute(
                                "INSERT INTO wal_filler (id, body) VALUES (?1, zeroblob(?2))",
                                args![i as i64, ROW_BYTES as i64],
                            )
                        })
                        .unwrap();
                }
            });
        }
    });

    let written = ROWS as u64 * FRAME_BYTES;
    let wal = std::fs::metadata(dir.path().join("t.db-wal"))
        .unwrap()
        .len();
    // A WAL that never started over would be at least `written` long: a WAL file never shrinks
    // while the database is open. Half of it leaves room for a checkpointer that falls behind for
    // a while on a loaded machine.
    assert!(
        wal < written / 2,
        "the WAL is {wal} bytes after {written} bytes of frames were written: it did not start over"
    );
    let rows = store
        .read_blocking(|sql| Ok(sql.query("SELECT count(*) FROM wal_filler", &[])?[0].int(0)))
        .unwrap();
    assert_eq!(rows, ROWS as i64, "every row written is there");
}
