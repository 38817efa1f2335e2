//! Behind a pooler: a stand-in for PgBouncer in front of the test database, which refuses
//! start-ups as PgBouncer does (SQLSTATE 08P01) and forwards the others.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use twofold_infra::pg::direct::DirectConnections;
use twofold_tests::spawn_app;

/// The PostgreSQL protocol's code for a client asking for TLS first.
const SSL_REQUEST: u32 = 80_877_103;

/// Which start-ups the stand-in refuses, and with what message.
type Refuse = dyn Fn(&[u8]) -> Option<&'static str> + Send + Sync;

/// A pool (never connected itself) whose connect options lead through the stand-in.
async fn behind_pooler(database_url: &str, refuse: Arc<Refuse>) -> PgPool {
    let upstream: PgConnectOptions = database_url.parse().unwrap();
    let target = format!("{}:{}", upstream.get_host(), upstream.get_port());
    assert!(
        database_url.contains(&format!("@{target}/")),
        "the test database is reached over TCP: {target}"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxied = database_url.replace(
        &format!("@{target}/"),
        &format!("@{}/", listener.local_addr().unwrap()),
    );
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (target, refuse) = (target.clone(), refuse.clone());
            tokio::spawn(async move {
                let _ = serve(client, &target, &*refuse).await;
            });
        }
    });
    PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy(&proxied)
        .unwrap()
}

/// One client: answers a TLS request with "no", reads the start-up message, then refuses it
/// or forwards it and everything after.
async fn serve(mut client: TcpStream, target: &str, refuse: &Refuse) -> std::io::Result<()> {
    let mut startup = read_message(&mut client).await?;
    if startup.len() == 8 && u32::from_be_bytes(startup[4..8].try_into().unwrap()) == SSL_REQUEST {
        client.write_all(b"N").await?;
        startup = read_message(&mut client).await?;
    }
    if let Some(message) = refuse(&startup) {
        let mut fields = Vec::new();
        for (kind, text) in [
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "08P01"),
            (b'M', message),
        ] {
            fields.push(kind);
            fields.extend_from_slice(text.as_bytes());
            fields.push(0);
        }
        fields.push(0);
        let mut error = vec![b'E'];
        error.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
        error.extend_from_slice(&fields);
        client.write_all(&error).await?;
        return client.shutdown().await;
    }
    let mut server = TcpStream::connect(target).await?;
    server.write_all(&startup).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

/// A message without a type byte (the first of a connection): its length, then the rest.
async fn read_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await?;
    let mut message = length.to_vec();
    message.resize(u32::from_be_bytes(length) as usize, 0);
    stream.read_exact(&mut message[4..]).await?;
    Ok(message)
}

/// `setting` on a connection of `conns`.
async fn show(conns: &DirectConnections, setting: &str) -> String {
    let mut lease = conns.acquire().await.expect("a connection");
    let value = sqlx::query_scalar(&format!("SHOW {setting}"))
        .fetch_one(lease.conn())
        .await
        .unwrap();
    lease.finish();
    value
}

// PgBouncer 1.20 and later refuse a start-up whose `options` hold a setting they do not track.
// An operator who let `enable_seqscan` through (as docs/operations.md said before the other
// two settings) keeps it: the settings are dropped one at a time, the last first.
#[tokio::test]
async fn a_pooler_that_tracks_only_the_first_setting_keeps_it() {
    let app = spawn_app().await;
    let pool = behind_pooler(
        &app.database_url,
        Arc::new(|startup: &[u8]| {
            let text = String::from_utf8_lossy(startup);
            (text.contains("plan_cache_mode") || text.contains("jit"))
                .then_some("unsupported startup parameter in options: plan_cache_mode")
        }),
    )
    .await;
    let conns = DirectConnections::new(&pool, 1);
    assert_eq!(show(&conns, "enable_seqscan").await, "off");
    assert_eq!(show(&conns, "plan_cache_mode").await, "auto");
    assert!(conns.tuned());
}

// PgBouncer answers 08P01 for its own failures too: a server it cannot log in to (a restart,
// a failover), too many clients. Such a failure is the caller's, and moves nothing: once the
// server is back, connections have every setting again. (Before, three such failures in a row
// left the instance without any, until it restarted.)
#[tokio::test]
async fn a_pooler_that_fails_for_a_while_takes_no_setting_away() {
    let app = spawn_app().await;
    let failures = Arc::new(AtomicUsize::new(3));
    let pool = behind_pooler(
        &app.database_url,
        Arc::new(move |_: &[u8]| {
            let left =
                failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            left.is_ok()
                .then_some("server login has been failing, try again later (server_login_retry)")
        }),
    )
    .await;
    let conns = DirectConnections::new(&pool, 1);
    let mut refused = 0;
    let mut lease = loop {
        match conns.acquire().await {
            Ok(lease) => break lease,
            Err(e) => {
                refused += 1;
                assert!(refused <= 3, "{e}");
            }
        }
    };
    let settings: (String, String, String) = sqlx::query_as(
        "SELECT current_setting('enable_seqscan'), current_setting('plan_cache_mode'), \
                current_setting('jit')",
    )
    .fetch_one(lease.conn())
    .await
    .unwrap();
    lease.finish();
    assert_eq!(
        settings,
        ("off".into(), "force_generic_plan".into(), "off".into())
    );
    assert!(conns.tuned());
}
