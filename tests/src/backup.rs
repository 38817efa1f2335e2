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
