//! Where a suite may read: the files of its own fixtures directory, and that directory inside
//! the suite's repository. Suites arrive in pull requests and run in CI with the project's
//! credentials, so a suite must not read, or show in its errors, anything else.
//!
//! Rules, each refused with its own message:
//! - a fixture is named relative to the fixtures directory: no absolute path, no `..`;
//! - it is resolved after symlinks, and what it resolves to must lie inside the fixtures
//!   directory (itself resolved after symlinks);
//! - the fixtures directory must lie inside the suite's repository — the directory holding
//!   `suites/` when the suite file is in a directory named `suites`, else the suite file's own
//!   directory — unless the user allows it ([`LoadOptions::fixtures_outside_repo`]).
//!
//! What it does not do: parse what it reads (the loader does), or confine anything other than a
//! suite's inputs.

use std::path::{Component, Path, PathBuf};

use crate::input::{self, ReadError};

/// How a suite is loaded: what the user allowed on the command line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LoadOptions {
    /// `--allow-fixtures-outside-repo`: the fixtures directory may lie anywhere.
    pub fixtures_outside_repo: bool,
}

/// Why a suite's path was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfineError {
    #[error("fixture path is empty")]
    Empty,
    #[error(
        "fixture path {path:?} is absolute; name it relative to the fixtures directory {}",
        .dir.display()
    )]
    Absolute { path: String, dir: PathBuf },
    #[error(
        "fixture path {path:?} contains `..`; a suite reads only files inside its fixtures directory {}",
        .dir.display()
    )]
    ParentDir { path: String, dir: PathBuf },
    #[error(
        "fixture {path:?} resolves (through a symlink) to {}, outside the fixtures directory {}; a suite reads only files inside it",
        .resolved.display(), .dir.display()
    )]
    Escapes {
        path: String,
        resolved: PathBuf,
        dir: PathBuf,
    },
    #[error(
        "fixtures: {} resolves to {}, outside the suite's repository {}; pass --allow-fixtures-outside-repo to read fixtures from there",
        .dir.display(), .resolved.display(), .repo.display()
    )]
    FixturesOutsideRepo {
        dir: PathBuf,
        resolved: PathBuf,
        repo: PathBuf,
    },
    #[error("fixtures: {}: is {kind}, not a directory", .dir.display())]
    FixturesNotDir {
        dir: PathBuf,
        kind: input::NotRegular,
    },
    #[error("fixtures: {}: is a file, not a directory", .dir.display())]
    FixturesIsFile { dir: PathBuf },
    #[error("fixtures: {}: does not exist", .dir.display())]
    FixturesMissing { dir: PathBuf },
    #[error("fixtures: {}: {source}", .dir.display())]
    FixturesIo {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// A suite's fixtures directory, resolved and checked.
#[derive(Debug, Clone)]
pub(crate) struct Fixtures {
    /// As the suite names it, joined to the suite's directory: what messages show.
    shown: PathBuf,
    /// Resolved after symlinks.
    real: PathBuf,
}

/// The repository a suite belongs to: the directory holding `suites/` when the suite file is in
/// a directory named `suites`, else the suite file's own directory. Resolved after symlinks.
pub(crate) fn repository_of(suite_file: &Path) -> std::io::Result<PathBuf> {
    let dir = match suite_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir = dir.canonicalize()?;
    Ok(match (dir.file_name(), dir.parent()) {
        (Some(name), Some(parent)) if name == "suites" => parent.to_path_buf(),
        _ => dir,
    })
}

impl Fixtures {
    /// The fixtures directory `written` (relative to the suite file's directory), checked.
    pub(crate) fn resolve(
        suite_file: &Path,
        written: &str,
        options: LoadOptions,
    ) -> Result<Fixtures, ConfineError> {
        let shown = suite_file.parent().unwrap_or(Path::new("")).join(written);
        let io = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => ConfineError::FixturesMissing { dir: shown.clone() },
            _ => ConfineError::FixturesIo {
                dir: shown.clone(),
                source,
            },
        };
        let real = shown.canonicalize().map_err(io)?;
        match input::not_regular(&real) {
            Some(input::NotRegular::Directory) => {}
            Some(kind) => {
                return Err(ConfineError::FixturesNotDir { dir: shown, kind });
            }
            None => return Err(ConfineError::FixturesIsFile { dir: shown }),
        }
        if !options.fixtures_outside_repo {
            let repo = repository_of(suite_file).map_err(io)?;
            if !real.starts_with(&repo) {
                return Err(ConfineError::FixturesOutsideRepo {
                    dir: shown,
                    resolved: real,
                    repo,
                });
            }
        }
        Ok(Fixtures { shown, real })
    }

    /// Where `name` is, as messages show it, if the name itself is acceptable.
    fn checked_name(&self, name: &str) -> Result<PathBuf, ConfineError> {
        if name.is_empty() {
            return Err(ConfineError::Empty);
        }
        let path = Path::new(name);
        if path.is_absolute() {
            return Err(ConfineError::Absolute {
                path: name.to_string(),
                dir: self.shown.clone(),
            });
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(ConfineError::ParentDir {
                path: name.to_string(),
                dir: self.shown.clone(),
            });
        }
        Ok(self.shown.join(path))
    }

    /// Read the fixture `name`: `(the path as messages show it, its text)`.
    pub(crate) fn read(&self, name: &str) -> Result<(PathBuf, String), ConfineError> {
        let shown = self.checked_name(name)?;
        let real = self
            .real
            .join(name)
            .canonicalize()
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => ReadError::Missing {
                    file: shown.clone(),
                },
                _ => ReadError::Io {
                    file: shown.clone(),
                    source,
                },
            })?;
        if !real.starts_with(&self.real) {
            return Err(ConfineError::Escapes {
                path: name.to_string(),
                resolved: real,
                dir: self.shown.clone(),
            });
        }
        let text = input::read_resolved(&real, &shown)?;
        Ok((shown, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `<tmp>/repo/suites/s.yaml` with `<tmp>/repo/fixtures/f.yaml`, and `<tmp>/outside.yaml`.
    struct Layout {
        dir: tempfile::TempDir,
    }

    impl Layout {
        fn new() -> Layout {
            let dir = tempfile::tempdir().unwrap();
            for sub in ["repo/suites", "repo/fixtures/sub"] {
                std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            }
            std::fs::write(dir.path().join("repo/fixtures/f.yaml"), "inside\n").unwrap();
            std::fs::write(dir.path().join("repo/fixtures/sub/g.yaml"), "deeper\n").unwrap();
            std::fs::write(dir.path().join("outside.yaml"), "secret\n").unwrap();
            Layout { dir }
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.dir.path().join(relative)
        }

        fn suite(&self) -> PathBuf {
            self.path("repo/suites/s.yaml")
        }

        fn fixtures(&self) -> Fixtures {
            Fixtures::resolve(&self.suite(), "../fixtures", LoadOptions::default()).unwrap()
        }
    }

    fn refused(result: Result<(PathBuf, String), ConfineError>) -> String {
        match result {
            Ok((path, text)) => panic!("read {} ({text:?})", path.display()),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn fixtures_inside_are_read() {
        let layout = Layout::new();
        let fixtures = layout.fixtures();
        let (shown, text) = fixtures.read("f.yaml").unwrap();
        assert_eq!(shown, layout.path("repo/suites/../fixtures/f.yaml"));
        assert_eq!(text, "inside\n");
        assert_eq!(fixtures.read("sub/g.yaml").unwrap().1, "deeper\n");
        assert_eq!(fixtures.read("./f.yaml").unwrap().1, "inside\n");
        // A symlink that stays inside is fine.
        std::os::unix::fs::symlink("sub/g.yaml", layout.path("repo/fixtures/link.yaml")).unwrap();
        assert_eq!(fixtures.read("link.yaml").unwrap().1, "deeper\n");
    }

    #[test]
    fn absolute_paths_parent_dirs_and_symlinks_out_are_refused() {
        let layout = Layout::new();
        let fixtures = layout.fixtures();
        let message = refused(fixtures.read("/etc/passwd"));
        assert!(
            message.starts_with("fixture path \"/etc/passwd\" is absolute"),
            "{message}"
        );
        assert!(!message.contains("root:"), "{message}");
        let message = refused(fixtures.read("../../outside.yaml"));
        assert!(message.contains("contains `..`"), "{message}");
        // `..` is refused even where it would stay inside.
        assert!(refused(fixtures.read("sub/../f.yaml")).contains("contains `..`"));
        std::os::unix::fs::symlink(
            layout.path("outside.yaml"),
            layout.path("repo/fixtures/out.yaml"),
        )
        .unwrap();
        let message = refused(fixtures.read("out.yaml"));
        assert!(
            message.contains("resolves (through a symlink) to")
                && message.contains("outside the fixtures directory"),
            "{message}"
        );
        // A symlinked directory out of the fixtures is the same escape.
        std::os::unix::fs::symlink(layout.path(""), layout.path("repo/fixtures/up")).unwrap();
        assert!(refused(fixtures.read("up/outside.yaml")).contains("outside the fixtures"));
        assert!(refused(fixtures.read("")).contains("empty"));
        assert!(refused(fixtures.read("missing.yaml")).ends_with("missing.yaml: does not exist"));
        assert!(refused(fixtures.read("sub")).ends_with("sub: is a directory, not a file"));
    }

    #[test]
    fn the_fixtures_directory_must_lie_inside_the_repository_unless_allowed() {
        let layout = Layout::new();
        let suite = layout.suite();
        let outside = |written: &str| {
            Fixtures::resolve(&suite, written, LoadOptions::default())
                .unwrap_err()
                .to_string()
        };
        let message = outside("/etc");
        assert!(
            message.contains("outside the suite's repository")
                && message.contains("--allow-fixtures-outside-repo"),
            "{message}"
        );
        assert!(outside("../..").contains("outside the suite's repository"));
        std::os::unix::fs::symlink(layout.path(""), layout.path("repo/fixtures-link")).unwrap();
        assert!(outside("../fixtures-link").contains("outside the suite's repository"));
        assert!(outside("../nothing").ends_with("does not exist"));
        assert!(outside("../fixtures/f.yaml").ends_with("is a file, not a directory"));
        let allowed = LoadOptions {
            fixtures_outside_repo: true,
        };
        let fixtures = Fixtures::resolve(&suite, "../..", allowed).unwrap();
        // Still confined to the directory it names.
        assert_eq!(fixtures.read("outside.yaml").unwrap().1, "secret\n");
        assert!(refused(fixtures.read("/etc/passwd")).contains("is absolute"));
    }

    #[test]
    fn the_repository_is_the_directory_holding_suites() {
        let layout = Layout::new();
        let repo = layout.path("repo").canonicalize().unwrap();
        assert_eq!(repository_of(&layout.suite()).unwrap(), repo);
        let elsewhere = layout.path("repo/fixtures/s.yaml");
        assert_eq!(repository_of(&elsewhere).unwrap(), repo.join("fixtures"));
    }
}
