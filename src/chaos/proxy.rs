//! An in-process TCP proxy, standing in for a load balancer (round robin over the instances
//! that answer their readiness probe) or for a virtual IP in front of PostgreSQL (one target,
//! switched when the server moves).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

struct Backend {
    addr: RwLock<SocketAddr>,
    ready: AtomicBool,
}

/// A listening proxy; its tasks end with the process.
pub struct Proxy {
    port: u16,
    backends: Arc<Vec<Backend>>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to the next ready backend.
    /// With `probe` (an HTTP path), each backend is probed every 100 ms and only those answering
    /// 200 get new connections, as a load balancer's health check does.
    pub async fn start(
        targets: Vec<SocketAddr>,
        probe: Option<&'static str>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let backends: Arc<Vec<Backend>> = Arc::new(
            targets
                .into_iter()
                .map(|addr| Backend {
                    addr: RwLock::new(addr),
                    ready: AtomicBool::new(true),
                })
                .collect(),
        );
        if let Some(path) = probe {
            tokio::spawn(probe_loop(backends.clone(), path));
        }
        let next = Arc::new(AtomicUsize::new(0));
        let shared = backends.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let backends = shared.clone();
                let next = next.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    if let Some(server) = connect(&backends, &next).await {
                        let (mut client, mut server) = (client, server);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(Self { port, backends })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Points backend `i` at a new address (the database after a restart or a failover).
    pub fn retarget(&self, i: usize, addr: SocketAddr) {
        *self.backends[i]
            .addr
            .write()
            .unwrap_or_else(|p| p.into_inner()) = addr;
    }
}

fn addr_of(b: &Backend) -> SocketAddr {
    *b.addr.read().unwrap_or_else(|p| p.into_inner())
}

/// The next ready backend that accepts the connection; every backend is tried once, ready ones
/// first, so a load balancer whose probe has not noticed a dead instance yet still finds a live
/// one.
async fn connect(backends: &[Backend], next: &AtomicUsize) -> Option<TcpStream> {
    let n = backends.len();
    let start = next.fetch_add(1, Ordering::Relaxed);
    let order: Vec<usize> = (0..n).map(|k| (start + k) % n).collect();
    let ready = order
        .iter()
        .filter(|i| backends[**i].ready.load(Ordering::Relaxed));
    let rest = order
        .iter()
        .filter(|i| !backends[**i].ready.load(Ordering::Relaxed));
    for i in ready.chain(rest) {
        let addr = addr_of(&backends[*i]);
        if let Ok(Ok(stream)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
        {
            let _ = stream.set_nodelay(true);
            return Some(stream);
        }
    }
    None
}

async fn probe_loop(backends: Arc<Vec<Backend>>, path: &'static str) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("a plain HTTP client");
    loop {
        for b in backends.iter() {
            let url = format!("http://{}{path}", addr_of(b));
            let ok = matches!(http.get(url).send().await, Ok(r) if r.status().is_success());
            b.ready.store(ok, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
