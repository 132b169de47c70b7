//! What the store does when the network to PostgreSQL misbehaves:
//!
//! - cut: while PostgreSQL cannot be reached, a write is refused (`Unavailable`) after its
//!   attempts instead of waiting for as long as the database is away: the caller can answer, and
//!   a server asked to stop can stop;
//! - slow: however long answers take to come back, the times the store records stay in the order
//!   of what happened.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use stockhub_store::testing::{add_locations, test_database, TestBackend};
use stockhub_store::{Clock, ManualClock, Store, StoreError, StoreOptions, SystemClock};

/// A TCP relay to the PostgreSQL server that can be cut (its open connections closed and new
/// ones refused, as when the database host goes away), and that can hold back every answer for a
/// while (a slow or busy network on the way back).
struct Relay {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    /// How long each chunk of an answer is held back, in ms.
    answer_delay_ms: Arc<AtomicU64>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let address = listener.local_addr().expect("relay address");
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let answer_delay_ms = Arc::new(AtomicU64::new(0));
        let (is_cut, streams, delay) = (cut.clone(), open.clone(), answer_delay_ms.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if is_cut.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let directions = [
                    (client.try_clone(), server.try_clone(), None),
                    (server.try_clone(), client.try_clone(), Some(delay.clone())),
                ];
                for (from, to, delay) in directions {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    std::thread::spawn(move || relay(from, to, delay));
                }
                streams.lock().unwrap().extend([client, server]);
            }
        });
        Relay {
            address,
            cut,
            open,
            answer_delay_ms,
        }
    }

    /// Holds back every chunk of every answer from now on by `delay`.
    fn slow_answers(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.answer_delay_ms.store(ms, Ordering::SeqCst);
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// A store on the database at `url`, reached through the relay.
    fn open_store(&self, url: &str, clock: Arc<dyn Clock>) -> Store {
        let through = url.replacen(
            &server_address(url).to_string(),
            &self.address.to_string(),
            1,
        );
        stockhub_store::open(&through, clock, &StoreOptions::default())
            .expect("open the store through the relay")
    }
}

/// Copies `from` to `to` until either side closes, each chunk held back by `delay_ms` if given.
fn relay(mut from: TcpStream, mut to: TcpStream, delay_ms: Option<Arc<AtomicU64>>) {
    let mut buffer = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buffer) {
        if n == 0 {
            break;
        }
        if let Some(ms) = &delay_ms {
            std::thread::sleep(Duration::from_millis(ms.load(Ordering::SeqCst)));
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

/// The `host:port` of a `postgres://user@host:port/db…` URL.
fn server_address(url: &str) -> SocketAddr {
    let after_user = url.split_once('@').map_or(url, |(_, rest)| rest);
    let host_port = after_user.split(['/', '?']).next().unwrap_or_default();
    host_port
        .parse()
        .unwrap_or_else(|_| panic!("this test needs the server as host:port in its URL: {url}"))
}

#[test]
fn a_write_is_refused_while_the_database_cannot_be_reached() {
    let Some(db) = test_database(TestBackend::Postgres, "outage") else {
        return;
    };
    let relay = Relay::start(server_address(&db.url));
    let store = relay.open_store(&db.url, Arc::new(ManualClock::new(1_000_000)));
    store
        .write_blocking(|sql| add_locations(sql, &["a"]))
        .expect("a write while the database is there");
    relay.cut();
    let (done, answer) = mpsc::channel();
    let writer = store.clone();
    std::thread::spawn(move || {
        let _ = done.send(writer.write_blocking(|sql| add_locations(sql, &["b"])));
    });
    // The writer tries again every 200 ms, 50 times: about 10 s.
    let result = answer
        .recv_timeout(Duration::from_secs(60))
        .expect("the write was still waiting after 60 s without a database");
    assert!(matches!(result, Err(StoreError::Unavailable)), "{result:?}");
    // The store's threads keep trying to reconnect; the process ends them.
    std::mem::forget(store);
}

/// The database clock, read on a connection of its own (ms).
fn database_clock(client: &mut postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
            &[],
        )
        .expect("read the database clock")
        .get(0)
}

/// The store carries the database clock forward from a reading taken as its transaction begins.
/// When answers are slow to come back, a write still never stamps a time earlier than the
/// database clock showed before, and a read never one later than it shows after. So whatever a
/// write records after a read began carries a later time than the read: an order booked after a
/// read of a channel's quantity counts as a sale after it.
#[test]
fn times_stay_in_order_when_the_databases_answers_are_slow() {
    let Some(db) = test_database(TestBackend::Postgres, "slow") else {
        return;
    };
    let relay = Relay::start(server_address(&db.url));
    // The wall clock: the store then reads the database's clock.
    let store = relay.open_store(&db.url, Arc::new(SystemClock));
    // The first transactions prepare their statements.
    store.write_blocking(|sql| Ok(sql.now_ms())).expect("write");
    store.read_blocking(|sql| Ok(sql.now_ms())).expect("read");
    let mut direct = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    relay.slow_answers(Duration::from_millis(300));

    // A write whose transaction has begun (its answer took 300 ms to come back) stamps a time
    // once the database clock has been read here.
    let (running, is_running) = mpsc::channel();
    let (go, wait_for_go) = mpsc::channel::<()>();
    let (done, answer) = mpsc::channel();
    let writer = store.clone();
    std::thread::spawn(move || {
        let _ = done.send(writer.write_blocking(move |sql| {
            let _ = running.send(());
            let _ = wait_for_go.recv();
            Ok(sql.now_ms())
        }));
    });
    is_running
        .recv_timeout(Duration::from_secs(30))
        .expect("the write began");
    let before = database_clock(&mut direct);
    go.send(()).expect("the write waits");
    let stamped = answer
        .recv_timeout(Duration::from_secs(30))
        .expect("the write ran")
        .expect("the write succeeded");
    assert!(
        stamped >= before,
        "the write stamped {stamped}, but the database clock showed {before} before"
    );

    let read = store.read_blocking(|sql| Ok(sql.now_ms())).expect("read");
    let after = database_clock(&mut direct);
    assert!(
        read <= after,
        "the read stamped {read}, but the database clock showed {after} after it"
    );
}
