//! CPU time and resident memory of processes, read from `/proc` (Linux), so the benchmark can say
//! how the two cores were shared between the service, PostgreSQL and the load generator.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// User + system CPU time of one process, or `None` if it is gone.
pub fn cpu_of(pid: u32) -> Option<Duration> {
    ticks_of(pid, false).map(duration_of)
}

/// CPU time of every process whose command name is `name` (e.g. all `postgres` processes),
/// with their children that have exited: a backend or autovacuum worker that ends within a
/// measurement takes its CPU time into the postmaster's, where it is still counted. Summing
/// the live processes alone lost that time, and a sum that fell below its start panicked.
pub fn cpu_of_named(name: &str) -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    let ticks = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == name)
        })
        .filter_map(|pid| ticks_of(pid, true))
        .sum();
    duration_of(ticks)
}

/// Clock ticks of user + system time of `pid`, and with `children` those of its children it
/// has waited for.
fn ticks_of(pid: u32, children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of stat; here (after pid and comm)
    // 11 to 14.
    let counted = if children { 11..15 } else { 11..13 };
    counted.map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

fn duration_of(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// Resident set size of one process, in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        let spin = std::time::Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_of(me).is_some_and(|t| t > Duration::ZERO));
        assert!(rss_of(me).is_some_and(|b| b > 1024 * 1024));
        assert_eq!(cpu_of(u32::MAX), None);
    }

    #[test]
    fn the_time_of_children_that_have_exited_is_counted() {
        let me = std::process::id();
        let before = ticks_of(me, true).unwrap() - ticks_of(me, false).unwrap();
        let spun = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(spun.success());
        let after = ticks_of(me, true).unwrap() - ticks_of(me, false).unwrap();
        assert!(after > before, "{before} -> {after} ticks");
    }
}
