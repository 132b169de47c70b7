//! While PostgreSQL cannot be reached, a write is refused (`Unavailable`) after its attempts
//! instead of waiting for as long as the database is away: the caller can answer, and a server
//! asked to stop can stop.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use stockhub_store::testing::{add_locations, test_database, TestBackend};
use stockhub_store::{ManualClock, StoreError, StoreOptions};

/// A TCP relay to the PostgreSQL server that can be cut: its open connections are closed and new
/// ones refused, as when the database host goes away.
struct Relay {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let address = listener.local_addr().expect("relay address");
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (is_cut, streams) = (cut.clone(), open.clone());
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
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ];
                for (from, to) in directions {
                    let (Ok(mut from), Ok(mut to)) = (from, to) else {
                        continue;
                    };
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                streams.lock().unwrap().extend([client, server]);
            }
        });
        Relay { address, cut, open }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
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
    let upstream = server_address(&db.url);
    let relay = Relay::start(upstream);
    let url = db
        .url
        .replacen(&upstream.to_string(), &relay.address.to_string(), 1);
    let store = stockhub_store::open(
        &url,
        Arc::new(ManualClock::new(1_000_000)),
        &StoreOptions::default(),
    )
    .expect("open the store through the relay");
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
