//! A backup of a test database with PostgreSQL's own tools, restored later into a new one: what
//! an operator does after losing a database, or what a copy kept somewhere else amounts to.

use std::path::PathBuf;
use std::process::Command;

/// A `pg_dump` (custom format) of a database, in a temporary file removed on drop.
pub struct Backup {
    file: PathBuf,
}

impl Drop for Backup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

fn run(mut command: Command) {
    let shown = format!("{command:?}");
    let out = command.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Backup {
    /// Dumps `database_url` now.
    pub async fn take(database_url: &str) -> Backup {
        let file = std::env::temp_dir().join(format!(
            "twofold-backup-{}.dump",
            uuid::Uuid::new_v4().simple()
        ));
        let url = database_url.to_owned();
        let path = file.clone();
        tokio::task::spawn_blocking(move || {
            let mut dump = Command::new(twofold_pg_local::program("pg_dump").expect("pg_dump"));
            dump.args(["--format=custom", "--no-owner", "--file"])
                .arg(&path)
                .arg(&url);
            run(dump);
        })
        .await
        .unwrap();
        Backup { file }
    }

    /// Restores the dump into a new, empty database; returns its URL.
    pub async fn restore(&self) -> String {
        let name = format!("r_{}", uuid::Uuid::new_v4().simple());
        let admin = crate::admin_pool().await;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("creating the database to restore into");
        admin.close().await;
        let url = format!("{}/{name}", crate::server_base().await);
        let (target, file) = (url.clone(), self.file.clone());
        tokio::task::spawn_blocking(move || {
            let mut restore =
                Command::new(twofold_pg_local::program("pg_restore").expect("pg_restore"));
            restore
                .args(["--no-owner", "--exit-on-error", "--dbname"])
                .arg(&target)
                .arg(&file);
            run(restore);
        })
        .await
        .unwrap();
        url
    }
}

/// A PostgreSQL server of its own (another cluster, so another system identifier), for a key
/// database that no backup of the test server holds. Stopped and removed on drop.
pub struct OtherServer {
    pg: twofold_pg_local::LocalPostgres,
    dir: PathBuf,
}

impl OtherServer {
    pub async fn start() -> OtherServer {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("twofold-keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let d = dir.clone();
        let pg = tokio::task::spawn_blocking(move || {
            twofold_pg_local::LocalPostgres::start(
                &d,
                &twofold_pg_local::LocalPgOptions {
                    ephemeral: true,
                    statement_stats: false,
                },
            )
        })
        .await
        .unwrap()
        .expect("starting a second PostgreSQL server");
        pg.stop_when_process_exits(std::process::id()).unwrap();
        OtherServer { pg, dir }
    }

    /// Its maintenance database's URL (the key database of a test).
    pub fn url(&self) -> String {
        self.pg.url("postgres")
    }
}

impl Drop for OtherServer {
    fn drop(&mut self) {
        let _ = self.pg.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
