//! A seeded mutation test of what reads untrusted input: the suite loader (a suite and its
//! fixtures on disk, in a repository of their own) and the manifest parser with Istio's
//! validation. Seeds are every suite and its fixtures and every manifest of the validation
//! corpus; each case mutates one seed a few times (bytes deleted, repeated, swapped, replaced by
//! YAML's and Istio's awkward values and issue 9's hostile ones, invalid UTF-8, lines spliced in
//! from another seed, indentation changed) and runs it.
//!
//! What must hold for every case: no panic, no hang (a watchdog names the case that takes longer
//! than [`CASE_TIMEOUT`]), and either the input is taken or refused with an error that names the
//! file and a line. Every error the loader returns is a `SuiteError`, which the CLI's one match
//! turns into exit 2, so no input exits other than 0, 1 or 2; the integration test
//! `bad_input::fuzzed_manifests` checks the binary's exit codes on mutated manifests too.
//!
//! `cargo test` runs a short seeded run ([`SHORT_RUN`] cases). A longer one:
//! `EGRESS_CONFORMANCE_FUZZ_CASES=20000 EGRESS_CONFORMANCE_FUZZ_SEED=7 cargo test --release --lib
//! fuzz -- --nocapture`. A failure prints the seed, the case number and the input, so it can be
//! replayed and made a test of its own.
//!
//! The random numbers come from `fastrand` (seeded, so a run is reproducible); the mutations are
//! written here because what makes YAML and Istio's fields awkward is this project's knowledge,
//! not a fuzzing crate's, and `cargo fuzz` needs a nightly toolchain the CI does not have.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::istio::parse_manifests_in;
use crate::suite::{LoadOptions, load_suite};

/// Cases in the run `cargo test` makes.
const SHORT_RUN: usize = 1000;

/// The longest one case may take before it counts as a hang (debug builds, a busy machine).
const CASE_TIMEOUT: Duration = Duration::from_secs(20);

/// Values YAML, Kubernetes and Istio treat specially, put in place of a word.
const AWKWARD: &[&str] = &[
    "",
    "~",
    "null",
    "[]",
    "{}",
    "-1",
    "0",
    "65536",
    "4294967296",
    "1e999",
    ".inf",
    ".nan",
    "0x1F",
    "true",
    "yes",
    "\"\"",
    "'",
    "\"",
    "*",
    "*.",
    "..",
    "../..",
    "/etc/passwd",
    "&a",
    "*a",
    "<<: *a",
    "!!binary AAAA",
    "!!str",
    "? ",
    ": ",
    "- ",
    "---",
    "...",
    "%YAML 1.2",
    "#",
    "\t",
    "\\",
    "{a: [b, {c: d}]}",
    "[[[[[[[[[[[[[[[[",
    "é",
    "\u{202e}",
    "\u{0}",
    "name: x",
    "ports:",
    "number: 80",
    "weight: 0",
    "weight: 101",
    "protocol: HTTP",
    "mode: ISTIO_MUTUAL",
    "hosts: ['*']",
    "resolution: DNS",
    "subset: v1",
    "regex: '('",
    "apply: [../x.yaml]",
    "apply: [/etc/passwd]",
    "fixtures: /etc",
    "curl -o /tmp/x http://a",
    "curl file:///etc/hostname",
    "curl http://a; id",
    "curl $(id)",
    "curl `id`",
    "kind: Gateway",
    "kind: Sidecar",
    "apiVersion: networking.istio.io/v1",
    "apiVersion: v1",
];

/// One mutated input: which seed, and its bytes.
struct Mutant {
    seed: usize,
    bytes: Vec<u8>,
}

fn mutate(rng: &mut fastrand::Rng, seeds: &[Vec<u8>]) -> Mutant {
    let seed = rng.usize(..seeds.len());
    let mut bytes = seeds[seed].clone();
    for _ in 0..rng.usize(1..=4) {
        mutate_once(rng, &mut bytes, seeds);
    }
    Mutant { seed, bytes }
}

/// Line starts of `bytes`, and its length.
fn line_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1),
    );
    starts
}

fn mutate_once(rng: &mut fastrand::Rng, bytes: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let len = bytes.len();
    let at = rng.usize(..=len);
    match rng.u8(..10) {
        // Delete a run of bytes.
        0 if len > 0 => {
            let end = (at + rng.usize(1..=16)).min(len);
            bytes.drain(at.min(end)..end);
        }
        // Put an awkward value in place of the word at `at`.
        1 | 2 => {
            let end = bytes[at..]
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b',' || *b == b']')
                .map_or(len, |n| at + n);
            let value = AWKWARD[rng.usize(..AWKWARD.len())].as_bytes();
            bytes.splice(at..end, value.iter().copied());
        }
        // Repeat a line (a duplicate key, a second port).
        3 => {
            let starts = line_starts(bytes);
            let i = rng.usize(..starts.len());
            let end = starts.get(i + 1).copied().unwrap_or(len);
            let line = bytes[starts[i]..end].to_vec();
            bytes.splice(end..end, line);
        }
        // Swap two lines.
        4 => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let mut lines: Vec<&str> = text.split('\n').collect();
            let (a, b) = (rng.usize(..lines.len()), rng.usize(..lines.len()));
            lines.swap(a, b);
            *bytes = lines.join("\n").into_bytes();
        }
        // Indent or outdent a line.
        5 => {
            let starts = line_starts(bytes);
            let start = starts[rng.usize(..starts.len())];
            if rng.bool() {
                bytes.splice(start..start, *b"  ");
            } else if bytes[start..].starts_with(b"  ") {
                bytes.drain(start..start + 2);
            }
        }
        // A line of another seed.
        6 => {
            let other = &seeds[rng.usize(..seeds.len())];
            let starts = line_starts(other);
            let i = rng.usize(..starts.len());
            let end = starts.get(i + 1).copied().unwrap_or(other.len());
            let line = other[starts[i]..end].to_vec();
            let starts = line_starts(bytes);
            let into = starts[rng.usize(..starts.len())];
            bytes.splice(into..into, line);
        }
        // Bytes that are not UTF-8, or a control character.
        7 => {
            let byte = [0xff, 0xc3, 0x80, 0x00, 0x1b, 0x7f][rng.usize(..6)];
            bytes.insert(at, byte);
        }
        // A digit changed (ports, weights, line numbers).
        8 => {
            if let Some(i) = (0..len)
                .map(|k| (at + k) % len)
                .find(|&i| bytes[i].is_ascii_digit())
            {
                bytes[i] = b"0123456789"[rng.usize(..10)];
            }
        }
        // Cut the input short.
        _ => bytes.truncate(at),
    }
}

/// What is wrong with `error`: it must name a line of one of `files`.
fn check_error(files: &[&Path], error: &str) -> Option<String> {
    let line = files.iter().any(|file| {
        let named = format!("{}:", file.display());
        error
            .split(named.as_str())
            .skip(1)
            .any(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    });
    (!line).then(|| format!("the error names no line of {files:?}: {error}"))
}

/// The manifest parser on one input: taken, or refused naming the file and a line.
fn manifest_case(bytes: &[u8]) -> Option<String> {
    let file = Path::new("fuzz/manifest.yaml");
    // Bytes that are not UTF-8 are the reader's to refuse (with their line); the parser takes
    // text.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return None;
    };
    match parse_manifests_in(file, text, "default") {
        Ok(_) => None,
        Err(error) => check_error(&[file], &error.to_string()),
    }
}

/// A repository with every suite of `suites/` and its fixtures, to mutate one file of at a time.
struct Repo {
    dir: tempfile::TempDir,
    suites: Vec<PathBuf>,
    /// Every file the cases may mutate (each suite file and each of its fixtures), with its
    /// text as found and the suite it belongs to.
    files: Vec<(PathBuf, Vec<u8>, usize)>,
}

impl Repo {
    fn new() -> Repo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(dir.path().join("suites")).unwrap();
        let mut names: Vec<PathBuf> = std::fs::read_dir(root.join("suites"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        names.sort();
        let (mut suites, mut files) = (Vec::new(), Vec::new());
        for (owner, from) in names.iter().enumerate() {
            let suite = dir.path().join("suites").join(from.file_name().unwrap());
            files.push((suite.clone(), std::fs::read(from).unwrap(), owner));
            // Each suite's fixtures are `../fixtures/<its name>`.
            let fixtures = Path::new("fixtures").join(from.file_stem().unwrap());
            std::fs::create_dir_all(dir.path().join(&fixtures)).unwrap();
            let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(&fixtures))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            found.sort();
            for path in found {
                let to = dir.path().join(&fixtures).join(path.file_name().unwrap());
                files.push((to, std::fs::read(&path).unwrap(), owner));
            }
            suites.push(suite);
        }
        for (path, bytes, _) in &files {
            std::fs::write(path, bytes).unwrap();
        }
        Repo { dir, suites, files }
    }

    /// The loader with file `which` replaced by `bytes`; the file is put back after.
    fn suite_case(&self, which: usize, bytes: &[u8]) -> Option<String> {
        let (path, original, owner) = &self.files[which];
        std::fs::write(path, bytes).unwrap();
        let result = load_suite(&self.suites[*owner], LoadOptions::default());
        std::fs::write(path, original).unwrap();
        match result {
            Ok(_) => None,
            Err(error) => {
                let error = error.to_string();
                // The suite's line, or the line of the file where it is wrong: a manifest's
                // error names both, a cleanup script's its own line (also when what it deletes
                // was renamed in a mutated manifest). Fixtures are named through the suite's
                // `fixtures:`, `suites/../fixtures/...`.
                let named: Vec<PathBuf> = self
                    .files
                    .iter()
                    .flat_map(|(file, _, _)| {
                        let shown = file.strip_prefix(self.dir.path()).unwrap();
                        [file.clone(), self.dir.path().join("suites/..").join(shown)]
                    })
                    .collect();
                let named: Vec<&Path> = named.iter().map(PathBuf::as_path).collect();
                check_error(&named, &error)
            }
        }
        .map(|p| {
            format!(
                "{p} (in {})",
                path.strip_prefix(self.dir.path()).unwrap().display()
            )
        })
    }
}

/// The seeds of the manifest cases: the validation corpus, the suites' manifests.
fn manifest_seeds(repo: &Repo) -> Vec<Vec<u8>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validation-corpus/manifests");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("the validation corpus")
        .map(|e| e.expect("a corpus entry").path())
        .collect();
    paths.sort();
    let mut seeds: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| std::fs::read(p).expect("a corpus manifest"))
        .collect();
    seeds.extend(
        repo.files
            .iter()
            .filter(|(path, _, _)| path.extension().is_some_and(|e| e == "yaml"))
            .filter(|(path, _, _)| !repo.suites.contains(path))
            .map(|(_, bytes, _)| bytes.clone()),
    );
    seeds
}

fn cases_wanted() -> usize {
    std::env::var("EGRESS_CONFORMANCE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SHORT_RUN)
}

fn seed_wanted() -> u64 {
    std::env::var("EGRESS_CONFORMANCE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(9)
}

/// Runs `cases` cases on a worker thread, so that a hang is reported (by the case it hangs on)
/// instead of hanging the test.
fn run(cases: usize, seed: u64) -> Vec<String> {
    let (progress, seen) = mpsc::channel::<(usize, Option<String>)>();
    let worker = std::thread::spawn(move || {
        let repo = Repo::new();
        let manifests = manifest_seeds(&repo);
        let suite_seeds: Vec<Vec<u8>> = repo.files.iter().map(|(_, b, _)| b.clone()).collect();
        let mut rng = fastrand::Rng::with_seed(seed);
        // The hook would print every caught panic; the report prints them once.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        for case in 0..cases {
            // Two manifest cases to one suite case: the loader's cases write files.
            let (what, mutant, outcome) = if case % 3 < 2 {
                let mutant = mutate(&mut rng, &manifests);
                let outcome = catch_unwind(AssertUnwindSafe(|| manifest_case(&mutant.bytes)));
                ("manifest", mutant, outcome)
            } else {
                // Mutate the file a seed came from: the suite or one fixture.
                let mutant = mutate(&mut rng, &suite_seeds);
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    repo.suite_case(mutant.seed, &mutant.bytes)
                }));
                ("suite", mutant, outcome)
            };
            let problem = match outcome {
                Ok(None) => None,
                Ok(Some(problem)) => Some(problem),
                Err(panic) => Some(format!(
                    "panicked: {}",
                    panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("(no message)")
                )),
            }
            .map(|p| {
                format!(
                    "case {case} ({what}, seed file {}): {p}\n--- input ---\n{}\n---",
                    mutant.seed,
                    String::from_utf8_lossy(&mutant.bytes)
                )
            });
            if progress.send((case, problem)).is_err() {
                break;
            }
        }
        std::panic::set_hook(hook);
    });
    let mut problems = Vec::new();
    let mut done = 0;
    while done < cases {
        match seen.recv_timeout(CASE_TIMEOUT) {
            Ok((case, problem)) => {
                done = case + 1;
                problems.extend(problem);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                problems.push(format!(
                    "case {done} (seed {seed}) took more than {CASE_TIMEOUT:?}: a hang"
                ));
                // The worker is left to the process's exit.
                return problems;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    worker.join().expect("the worker catches every panic");
    problems
}

#[test]
fn mutated_suites_and_manifests_are_taken_or_refused_with_a_line() {
    let (cases, seed) = (cases_wanted(), seed_wanted());
    let started = Instant::now();
    let problems = run(cases, seed);
    eprintln!(
        "fuzz: {cases} cases from seed {seed} in {:.1?}, {} problems",
        started.elapsed(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "{} of {cases} cases (seed {seed}):\n{}",
        problems.len(),
        problems
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_mutations_reach_every_kind_of_refusal() {
    // A fuzz run that only ever made malformed YAML would prove little: the mutants of a short run
    // must be taken, refused by Istio's rules and refused before them, each some of the time.
    let mut rng = fastrand::Rng::with_seed(seed_wanted());
    let repo = Repo::new();
    let manifests = manifest_seeds(&repo);
    let file = Path::new("fuzz/manifest.yaml");
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..SHORT_RUN {
        let mutant = mutate(&mut rng, &manifests);
        if let Ok(text) = std::str::from_utf8(&mutant.bytes) {
            kinds.insert(match parse_manifests_in(file, text, "default") {
                Ok(_) => "taken",
                Err(crate::istio::ManifestError::Invalid { .. }) => "refused by Istio's rules",
                Err(_) => "refused before them",
            });
        }
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}
