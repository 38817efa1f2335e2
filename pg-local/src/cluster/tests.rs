//! The whole lifecycle on real clusters: start, reuse, stop, restart, passwords, and concurrent
//! starts on one folder.

use std::fs;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::thread;

use super::*;
use crate::command::run;
use crate::test_support::{ephemeral, psql, query, StopOnDrop, TestDir};

#[test]
fn starts_reuses_stops_and_restarts() {
    let dir = TestDir::new("lifecycle");
    let first = LocalPostgres::start(dir.path(), &ephemeral()).unwrap();
    let _stop = StopOnDrop(&first);
    // Safety net: even if this test binary is killed, the server goes away with it.
    first.stop_when_process_exits(std::process::id()).unwrap();

    assert_eq!(
        first.data_dir(),
        fs::canonicalize(dir.path()).unwrap().join("data")
    );
    assert_ne!(first.port(), 0);
    TcpStream::connect((Ipv4Addr::LOCALHOST, first.port())).unwrap();
    assert_eq!(query(&first, "select 1"), "1");
    assert_eq!(query(&first, "show fsync"), "off");
    assert_eq!(query(&first, "show max_connections"), "300");
    assert_eq!(query(&first, "show listen_addresses"), "127.0.0.1");

    // The unix socket is in the private run folder.
    let socket = first.socket_dir.to_string_lossy().into_owned();
    assert_eq!(
        socket,
        format!("{}/run", fs::canonicalize(dir.path()).unwrap().display())
    );
    let port = first.port().to_string();
    let socket_args = [
        "-h", &socket, "-p", &port, "-U", "postgres", "-c", "select 2",
    ];
    let out = psql(Some(first.password().expose()), &socket_args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the password, neither way in is open (it used to trust any local user).
    let tcp_args = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "postgres",
        "-c",
        "select 3",
    ];
    for args in [&socket_args[..], &tcp_args[..]] {
        let out = psql(None, args);
        assert!(
            !out.status.success(),
            "connected without a password: {args:?}"
        );
        let out = psql(Some("wrong-password"), args);
        assert!(
            !out.status.success(),
            "connected with a wrong password: {args:?}"
        );
    }
    let password_file = fs::metadata(dir.path().join(auth::PASSWORD_FILE)).unwrap();
    assert_eq!(password_file.permissions().mode() & 0o777, 0o600);

    // The URL works as given.
    let out = psql(None, &[&first.url("postgres"), "-c", "select current_user"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");

    // A second start on the same folder reuses the running server.
    let second = LocalPostgres::start(dir.path(), &ephemeral()).unwrap();
    assert_eq!(second.port(), first.port());

    first.stop().unwrap();
    assert!(!first.is_running().unwrap());
    assert!(!accepts_tcp(first.port()));
    // Idempotent.
    first.stop().unwrap();
    second.stop().unwrap();

    // A cluster made before passwords (trust, no password file) gets one on its next start.
    fs::write(
        first.data_dir().join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    fs::remove_file(dir.path().join(auth::PASSWORD_FILE)).unwrap();

    // Restart on the existing data, this time durable.
    let third = LocalPostgres::start(dir.path(), &LocalPgOptions::default()).unwrap();
    assert_ne!(third.password(), first.password());
    let third_port = third.port().to_string();
    let out = psql(
        None,
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &third_port,
            "-U",
            "postgres",
            "-c",
            "select 4",
        ],
    );
    assert!(!out.status.success(), "still trusting after an upgrade");
    assert_eq!(query(&third, "select 1"), "1");
    assert_eq!(query(&third, "show fsync"), "on");

    // An old server still running with trust when a new Twofold first meets it: reused as
    // it is (it ignores the password), and given its password at the next start, not
    // locked out by a password file naming one it never got.
    fs::write(
        third.data_dir().join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    let mut reload = third.run_as.command(&third.binaries.pg_ctl);
    reload.arg("reload").arg("-D").arg(third.data_dir());
    assert!(run(reload).unwrap().status.success());
    fs::remove_file(dir.path().join(auth::PASSWORD_FILE)).unwrap();
    let reused = LocalPostgres::start(dir.path(), &LocalPgOptions::default()).unwrap();
    assert_eq!(reused.port(), third.port());
    assert_eq!(query(&reused, "select 5"), "5");
    reused.stop().unwrap();
    let fourth = LocalPostgres::start(dir.path(), &LocalPgOptions::default()).unwrap();
    assert_eq!(query(&fourth, "select 6"), "6");
    let fourth_port = fourth.port().to_string();
    let out = psql(
        None,
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &fourth_port,
            "-U",
            "postgres",
            "-c",
            "select 7",
        ],
    );
    assert!(
        !out.status.success(),
        "still trusting after the second start"
    );
    fourth.stop().unwrap();
    assert!(!fourth.is_running().unwrap());
}

#[test]
fn concurrent_starts_share_one_server_and_long_paths_get_a_short_socket() {
    let dir = TestDir::new("concurrent");
    let deep = dir.path().join("a".repeat(60)).join("b".repeat(60));
    fs::create_dir_all(&deep).unwrap();
    for folder in [dir.path().join("a".repeat(60)), deep.clone()] {
        fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
    }

    let handles: Vec<_> = (0..2)
        .map(|_| {
            let deep = deep.clone();
            thread::spawn(move || LocalPostgres::start(&deep, &ephemeral()))
        })
        .collect();
    let started: Vec<LocalPostgres> = handles
        .into_iter()
        .map(|handle| handle.join().unwrap().unwrap())
        .collect();
    let _stop = StopOnDrop(&started[0]);
    started[0]
        .stop_when_process_exits(std::process::id())
        .unwrap();

    assert_eq!(started[0].port(), started[1].port());
    assert!(started[0]
        .socket_dir
        .to_string_lossy()
        .starts_with("/tmp/twofold-pg-"));
    assert_eq!(query(&started[0], "select 1"), "1");
    started[0].stop().unwrap();
    assert!(!started[0].socket_dir.exists());
}

#[test]
fn database_names_are_encoded_for_a_url() {
    assert_eq!(percent_encode("twofold_test-1"), "twofold_test-1");
    assert_eq!(percent_encode("a b/c?"), "a%20b%2Fc%3F");
}
