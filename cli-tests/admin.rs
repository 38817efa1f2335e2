//! The administration commands (`migrate`, `tenant`, `keys`, `projections`) in zero-config mode.

use std::process::Stdio;

use super::{temp_dir, twofold};

#[test]
fn admin_commands_work_in_zero_config_mode_and_leave_no_server_running() {
    let dir = temp_dir("admin");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| {
        let out = twofold(&dir).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !dir.join("pg/data/postmaster.pid").exists(),
            "{args:?} left the private PostgreSQL running"
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&["migrate"]).contains("Migrations applied"));
    let created = run(&["tenant", "create", "Acme Corp", "--id", "acme"]);
    assert!(created.contains("Tenant:    acme (Acme Corp)"), "{created}");
    assert!(created.contains("Admin key: tfk_"), "{created}");
    assert!(run(&["projections", "rebuild"]).contains("Rebuilt: tenants"));
    // A rotation is for deployments with DATABASE_URL: zero-config's key lives in its file.
    let out = twofold(&dir).args(["keys", "rotate"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dev-secrets.env"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // The same id twice is refused, without a panic.
    let out = twofold(&dir)
        .args(["tenant", "create", "Other", "--id", "acme"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // Erasing needs a reason and a tenant that exists; then every key is revoked.
    let out = twofold(&dir)
        .args(["tenant", "erase", "acme"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"));
    let out = twofold(&dir)
        .args(["tenant", "erase", "nobody", "--reason", "typo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not found") && !err.contains("panicked"),
        "{err}"
    );
    let erased = run(&["tenant", "erase", "acme", "--reason", "contract ended"]);
    assert!(
        erased.contains("Tenant acme erased: every API key revoked"),
        "{erased}"
    );
    assert!(!dir.join("pg/data/postmaster.pid").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tenant_create_with_nobody_reading_its_output_creates_nothing_and_says_why() {
    let dir = temp_dir("create-unread");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut child = twofold(&dir)
        .args(["tenant", "create", "Acme Corp", "--id", "acme"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is written: the admin key would be lost.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("standard output") && !err.contains("panicked"),
        "{err}"
    );
    assert!(
        !dir.join("pg/data/postmaster.pid").exists(),
        "the private PostgreSQL was left running"
    );
    // Nothing was created: the id is still free, and this time the key is shown.
    let out = twofold(&dir)
        .args(["tenant", "create", "Acme Corp", "--id", "acme"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Admin key: tfk_"));
    let _ = std::fs::remove_dir_all(&dir);
}
