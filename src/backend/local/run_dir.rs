//! The run's directory (bootstraps, Envoy logs, the CA): made for the run, marked with its owner,
//! removed at its end unless kept, and swept by a later run when its owner was killed outright.

use std::path::{Path, PathBuf};
use std::time::Duration;

const RUN_DIR_PREFIX: &str = "egress-conformance-";
/// Who owns a run directory: its pid, its start time and its executable (see [`Owner`]).
const OWNER_FILE: &str = "owner.pid";
/// Present in a directory kept on purpose (`--keep`).
const KEPT_FILE: &str = "kept";
/// How old a run directory without a readable owner must be before it is swept: a run writes
/// its owner right after making the directory, so one without it for this long never will.
pub(crate) const UNOWNED_GRACE: Duration = Duration::from_secs(10 * 60);

/// A process, identified so that a reused pid is not taken for it: the pid, its start time
/// (`/proc/<pid>/stat`, clock ticks after boot) and its executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: u32,
    pub start: Option<u64>,
    pub exe: Option<PathBuf>,
}

impl Owner {
    /// This process.
    pub(crate) fn current() -> Owner {
        let pid = std::process::id();
        Owner {
            pid,
            start: start_time(pid),
            exe: std::env::current_exe().ok(),
        }
    }

    /// As the owner file writes it: the pid, the start time and the executable, one per line.
    fn to_file(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.pid,
            self.start.map(|s| s.to_string()).unwrap_or_default(),
            self.exe
                .as_deref()
                .map(|e| e.display().to_string())
                .unwrap_or_default()
        )
    }

    /// The owner file read back; a lone pid (written by older runs) is read too.
    fn from_file(text: &str) -> Option<Owner> {
        let mut lines = text.lines();
        let pid = lines.next()?.trim().parse().ok()?;
        let start = lines.next().and_then(|s| s.trim().parse().ok());
        let exe = lines
            .next()
            .filter(|e| !e.trim().is_empty())
            .map(PathBuf::from);
        Some(Owner { pid, start, exe })
    }

    /// Whether the process that wrote this is still running: a process with the pid exists,
    /// and it is the same process (same start time) or, where the start time is unknown, a
    /// process of this program (same executable name).
    pub(crate) fn alive(&self) -> bool {
        let Some(running_since) = start_time(self.pid) else {
            // No such process, or a zombie: gone.
            return false;
        };
        if let Some(start) = self.start {
            return start == running_since;
        }
        let ours = std::env::current_exe().ok();
        let theirs = std::fs::read_link(format!("/proc/{}/exe", self.pid)).ok();
        match (ours, theirs) {
            (Some(ours), Some(theirs)) => same_program(&ours, &theirs),
            // Not ours to inspect (another user's process): assume it is alive.
            _ => true,
        }
    }
}

/// Whether two executables are the same program: the same file name (`(deleted)` aside, as
/// /proc shows a binary rebuilt under a running process).
fn same_program(a: &Path, b: &Path) -> bool {
    let name = |p: &Path| {
        p.file_name().map(|n| {
            n.to_string_lossy()
                .trim_end_matches(" (deleted)")
                .to_string()
        })
    };
    name(a).is_some() && name(a) == name(b)
}

/// The start time of `pid` in clock ticks after boot, if it runs (zombies count as gone).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: the command may hold spaces and parentheses.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, starttime field 22.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Why a run directory was swept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stale {
    /// Its owner is gone, or the pid is now another process's.
    OwnerGone(Owner),
    /// It names no owner, and is older than [`UNOWNED_GRACE`].
    Unowned,
}

/// Remove the directories of runs that were killed outright (SIGKILL leaves no chance to clean
/// up): their owner is gone — or its pid now belongs to another process — and nobody asked to
/// keep them; and directories that never named an owner, once older than [`UNOWNED_GRACE`]. A
/// directory in use by a live run is never touched.
pub(crate) fn sweep_stale_run_dirs(temp: &Path) -> Vec<PathBuf> {
    sweep(temp, UNOWNED_GRACE)
        .into_iter()
        .map(|(path, _)| path)
        .collect()
}

fn sweep(temp: &Path, grace: Duration) -> Vec<(PathBuf, Stale)> {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry
            .file_name()
            .to_string_lossy()
            .starts_with(RUN_DIR_PREFIX);
        // Only real directories: never follow a symlink someone put in the temp directory.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !ours || !is_dir || path.join(KEPT_FILE).exists() {
            continue;
        }
        let owner = std::fs::read_to_string(path.join(OWNER_FILE))
            .ok()
            .and_then(|text| Owner::from_file(&text));
        let stale = match owner {
            Some(owner) if owner.alive() => continue,
            Some(owner) => Stale::OwnerGone(owner),
            None => {
                let age = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|modified| modified.elapsed().ok());
                if age.is_none_or(|age| age <= grace) {
                    continue;
                }
                Stale::Unowned
            }
        };
        if std::fs::remove_dir_all(&path).is_ok() {
            removed.push((path, stale));
        }
    }
    removed
}

/// The directory of one run; removed on drop unless kept.
#[derive(Debug)]
pub(crate) struct RunDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    /// Sweep directories of dead runs, then make this run's, owned by this process.
    pub(crate) fn create(keep: bool) -> std::io::Result<RunDir> {
        sweep_stale_run_dirs(&std::env::temp_dir());
        let dir = tempfile::Builder::new().prefix(RUN_DIR_PREFIX).tempdir()?;
        let path = dir.path().to_path_buf();
        std::fs::write(path.join(OWNER_FILE), Owner::current().to_file())?;
        if keep {
            // Marked so that a later run's sweep leaves it to the user, even if this one is
            // killed.
            std::fs::write(path.join(KEPT_FILE), "")?;
        }
        Ok(RunDir {
            dir: Some(dir),
            path,
            keep,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn kept(&self) -> bool {
        self.keep
    }

    /// Remove it (or leave it, when kept); what could not be removed is a leftover.
    pub(crate) fn close(mut self) -> Result<(), String> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        if self.keep {
            let _ = dir.keep();
            return Ok(());
        }
        dir.close()
            .map_err(|e| format!("removing {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory under `temp` named `name`, with `owner` as its owner file (if any).
    fn make(temp: &Path, name: &str, owner: Option<&str>, kept: bool) -> PathBuf {
        let dir = temp.join(name);
        std::fs::create_dir(&dir).unwrap();
        if let Some(owner) = owner {
            std::fs::write(dir.join(OWNER_FILE), owner).unwrap();
        }
        if kept {
            std::fs::write(dir.join(KEPT_FILE), "").unwrap();
        }
        dir
    }

    /// Set `path`'s modification time `ago` into the past.
    fn age(path: &Path, ago: Duration) {
        let then = std::time::SystemTime::now() - ago;
        let since = then.duration_since(std::time::UNIX_EPOCH).unwrap();
        let times = [libc::timespec {
            tv_sec: since.as_secs() as libc::time_t,
            tv_nsec: 0,
        }; 2];
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: utimensat(2) with a NUL-terminated path and two timespecs.
        assert_eq!(
            unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), 0) },
            0
        );
    }

    fn swept(temp: &Path) -> Vec<(String, Stale)> {
        let mut out: Vec<_> = sweep(temp, UNOWNED_GRACE)
            .into_iter()
            .map(|(p, why)| (p.file_name().unwrap().to_string_lossy().into_owned(), why))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn the_owner_file_names_the_process_and_reads_back() {
        let me = Owner::current();
        assert!(me.start.is_some() && me.exe.is_some(), "{me:?}");
        assert_eq!(Owner::from_file(&me.to_file()), Some(me.clone()));
        assert!(me.alive());
        assert_eq!(
            Owner::from_file("1234\n"),
            Some(Owner {
                pid: 1234,
                start: None,
                exe: None
            })
        );
        assert_eq!(Owner::from_file("garbage"), None);
    }

    #[test]
    fn sweeping_removes_only_dead_unkept_run_dirs() {
        let temp = tempfile::tempdir().unwrap();
        let t = temp.path();
        let me = Owner::current();
        // No process has pid u32::MAX - 1 (pid_max is at most 2^22).
        make(t, "egress-conformance-dead", Some("4294967294"), false);
        make(t, "egress-conformance-kept", Some("4294967294"), true);
        make(t, "egress-conformance-alive", Some(&me.to_file()), false);
        // An older run's file: only the pid, ours.
        make(
            t,
            "egress-conformance-alive-old-format",
            Some(&me.pid.to_string()),
            false,
        );
        make(t, "egress-conformance-unowned-new", None, false);
        make(t, "someone-else", Some("4294967294"), false);
        let dead = Owner::from_file("4294967294").unwrap();
        assert_eq!(
            swept(t),
            [(
                "egress-conformance-dead".to_string(),
                Stale::OwnerGone(dead)
            )]
        );
        for left in [
            "egress-conformance-kept",
            "egress-conformance-alive",
            "egress-conformance-alive-old-format",
            "egress-conformance-unowned-new",
            "someone-else",
        ] {
            assert!(t.join(left).exists(), "{left}");
        }
    }

    #[test]
    fn a_reused_pid_is_not_the_owner() {
        let temp = tempfile::tempdir().unwrap();
        let t = temp.path();
        // Our pid, but another start time: the pid was reused by an unrelated process.
        let mut impostor = Owner::current();
        impostor.start = impostor.start.map(|s| s + 1);
        make(
            t,
            "egress-conformance-reused",
            Some(&impostor.to_file()),
            false,
        );
        // A live process of another program under an older run's file, which cannot say when
        // its run started: the executable decides.
        let mut other = std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let other_pid = other.id().to_string();
        make(
            t,
            "egress-conformance-other-program",
            Some(&other_pid),
            false,
        );
        let result = swept(t);
        other.kill().unwrap();
        other.wait().unwrap();
        assert_eq!(
            result,
            [
                (
                    "egress-conformance-other-program".to_string(),
                    Stale::OwnerGone(Owner::from_file(&other_pid).unwrap())
                ),
                (
                    "egress-conformance-reused".to_string(),
                    Stale::OwnerGone(impostor)
                ),
            ]
        );
    }

    #[test]
    fn an_unowned_directory_is_swept_after_the_grace() {
        let temp = tempfile::tempdir().unwrap();
        let t = temp.path();
        let old = make(t, "egress-conformance-unowned-old", None, false);
        age(&old, UNOWNED_GRACE + Duration::from_secs(60));
        let fresh = make(
            t,
            "egress-conformance-unowned-fresh",
            Some("not a pid"),
            false,
        );
        age(&fresh, UNOWNED_GRACE / 2);
        let kept = make(t, "egress-conformance-unowned-kept", None, true);
        age(&kept, UNOWNED_GRACE * 2);
        assert_eq!(
            swept(t),
            [("egress-conformance-unowned-old".to_string(), Stale::Unowned)]
        );
        assert!(fresh.exists() && kept.exists());
    }

    #[test]
    fn a_symlink_is_never_followed() {
        let temp = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join(OWNER_FILE), "4294967294").unwrap();
        std::os::unix::fs::symlink(target.path(), temp.path().join("egress-conformance-link"))
            .unwrap();
        assert_eq!(swept(temp.path()), []);
        assert!(target.path().join(OWNER_FILE).exists());
    }
}
