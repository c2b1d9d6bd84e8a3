//! The run's directory (bootstraps, Envoy logs, the CA): made for the run, marked with its owner,
//! removed at its end unless kept, and swept by a later run when its owner was killed outright.

use std::path::{Path, PathBuf};

const RUN_DIR_PREFIX: &str = "egress-conformance-";
/// The pid of the run that owns a run directory.
const OWNER_FILE: &str = "owner.pid";
/// Present in a directory kept on purpose (`--keep`).
const KEPT_FILE: &str = "kept";

/// Remove the directories of runs that were killed outright (SIGKILL leaves no chance to clean
/// up): their owner is gone and nobody asked to keep them. Best effort; a directory in use by a
/// live run is never touched.
pub(crate) fn sweep_stale_run_dirs(temp: &Path) -> Vec<PathBuf> {
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
        if !ours || path.join(KEPT_FILE).exists() {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(path.join(OWNER_FILE))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{owner}")).exists() && std::fs::remove_dir_all(&path).is_ok()
        {
            removed.push(path);
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
        std::fs::write(path.join(OWNER_FILE), std::process::id().to_string())?;
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

    #[test]
    fn sweeping_removes_only_dead_unkept_run_dirs() {
        let temp = tempfile::tempdir().unwrap();
        let make = |name: &str, owner: Option<&str>, kept: bool| {
            let dir = temp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            if let Some(owner) = owner {
                std::fs::write(dir.join(OWNER_FILE), owner).unwrap();
            }
            if kept {
                std::fs::write(dir.join(KEPT_FILE), "").unwrap();
            }
            dir
        };
        // No process has pid u32::MAX - 1 (pid_max is at most 2^22).
        let dead = make("egress-conformance-dead", Some("4294967294"), false);
        let kept = make("egress-conformance-kept", Some("4294967294"), true);
        let alive = make(
            "egress-conformance-alive",
            Some(&std::process::id().to_string()),
            false,
        );
        let unowned = make("egress-conformance-unowned", None, false);
        let other = make("someone-else", Some("4294967294"), false);
        assert_eq!(sweep_stale_run_dirs(temp.path()), vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(kept.exists() && alive.exists() && unowned.exists() && other.exists());
    }
}
