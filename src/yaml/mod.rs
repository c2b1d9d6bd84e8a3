//! Reading YAML with positions: one way for suites and manifests alike. A stream is read into
//! located trees ([`Node`]); a typed model is decoded from a tree through [`NodeDe`], so that
//! every error — malformed YAML, a duplicate key, an unknown field, a missing one, a wrong value
//! — names the file, the line, the column and the field's path ([`FieldError`]).
//!
//! Why not deserialize straight from the text: serde-saphyr's errors have a position but no field
//! path, and a manifest's shape depends on its `kind`, which serde can only dispatch on by
//! buffering the document, which drops positions.

mod de;
mod node;
mod path;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::MessageFormatter;

pub(crate) use de::{DecodeError, NodeDe, Problem, Record, Untranslated};
pub(crate) use node::{Node, Pos, Yaml, to_json};
pub(crate) use path::{FieldPath, locate};

/// What is wrong with a value, a field or the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldProblem {
    /// Not YAML, or not YAML a manifest can be.
    Malformed(String),
    DuplicateKey {
        key: String,
        first_line: usize,
    },
    /// A field the model does not have at that place (a typo, most likely).
    UnknownField {
        field: String,
        /// The field names allowed where this one was found.
        expected: Vec<String>,
    },
    MissingField,
    /// A value of the wrong type, out of range, or not one of an enum's names.
    Invalid {
        value: String,
        expected: String,
    },
}

/// A problem at a place: the file, line and column, and the field's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) struct FieldError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Empty for problems of the text itself.
    pub path: String,
    pub problem: FieldProblem,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        match &self.problem {
            FieldProblem::Malformed(message) => write!(f, ": malformed YAML: {message}"),
            FieldProblem::DuplicateKey { key, first_line } => write!(
                f,
                ": duplicate key `{key}`{}: a key may appear once in a mapping (first at line {first_line})",
                if self.path.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", self.path)
                }
            ),
            FieldProblem::UnknownField { field, expected } => {
                write!(f, ": unknown field `{field}` at {}", self.path)?;
                if !expected.is_empty() {
                    write!(f, "; expected one of {}", expected.join(", "))?;
                }
                Ok(())
            }
            FieldProblem::MissingField => write!(f, ": missing required field {}", self.path),
            FieldProblem::Invalid { value, expected } => write!(
                f,
                ": invalid value `{value}` at {}: expected {expected}",
                self.path
            ),
        }
    }
}

impl FieldError {
    fn at(file: &Path, pos: Option<Pos>, path: String, problem: FieldProblem) -> Box<FieldError> {
        Box::new(FieldError {
            file: file.to_path_buf(),
            line: pos.map(|p| p.line),
            column: pos.and_then(Pos::column),
            path,
            problem,
        })
    }

    /// A problem with the value at `path` in `root`.
    pub(crate) fn invalid(
        file: &Path,
        root: &Node,
        path: &FieldPath,
        expected: impl Into<String>,
    ) -> Box<FieldError> {
        let value = path::value_text(root, path);
        FieldError::at(
            file,
            Some(locate(root, path).value),
            path.to_string(),
            FieldProblem::Invalid {
                value,
                expected: expected.into(),
            },
        )
    }

    /// A required field that is absent: reported where it belongs, at its parent.
    pub(crate) fn missing(file: &Path, root: &Node, path: &FieldPath) -> Box<FieldError> {
        FieldError::at(
            file,
            Some(locate(root, path).value),
            path.to_string(),
            FieldProblem::MissingField,
        )
    }
}

/// Read `text`, a `---`-separated stream of documents from `file`. Empty documents are kept out.
pub(crate) fn read_documents(file: &Path, text: &str) -> Result<Vec<Node>, Box<FieldError>> {
    // YAML 1.2 booleans only: with YAML 1.1's, a label value `n` or `on` would silently become
    // `false`/`true` instead of being the string it is meant to be. Duplicate keys reach the tree,
    // which refuses them with both places.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::PassThrough,
    };
    let documents: Vec<Option<Node>> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|error| yaml_error(file, &error))?;
    Ok(documents
        .into_iter()
        .flatten()
        .filter(|node| !matches!(node.value, Yaml::Null))
        .collect())
}

fn yaml_error(file: &Path, error: &serde_saphyr::Error) -> Box<FieldError> {
    let location = error
        .location()
        .filter(|location| *location != serde_saphyr::Location::UNKNOWN)
        .map(|l| Pos {
            line: node::to_usize(l.line()),
            column: node::to_usize(l.column()),
        });
    let message: String = serde_saphyr::DefaultMessageFormatter
        .format_message(error)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if let Some(duplicate) = node::parse_duplicate(&message) {
        return FieldError::at(
            file,
            Some(duplicate.at),
            String::new(),
            FieldProblem::DuplicateKey {
                key: duplicate.key,
                first_line: duplicate.first_line,
            },
        );
    }
    FieldError::at(
        file,
        location,
        String::new(),
        FieldProblem::Malformed(message),
    )
}

/// Decode `T` from `node` (found at `path` in the document `root`), noting what the model asks.
pub(crate) fn decode<T: DeserializeOwned>(
    file: &Path,
    root: &Node,
    node: &Node,
    path: FieldPath,
) -> Result<(T, Record), Box<FieldError>> {
    let record = Record::default();
    let value = T::deserialize(NodeDe {
        node,
        path,
        record: &record,
    })
    .map_err(|error| decode_error(file, root, error))?;
    Ok((value, record))
}

fn decode_error(file: &Path, root: &Node, error: DecodeError) -> Box<FieldError> {
    let (path, pos) = error.at.unwrap_or_else(|| (FieldPath::default(), root.pos));
    let problem = match error.problem {
        Problem::UnknownField { field, expected } => FieldProblem::UnknownField {
            field,
            expected: expected.iter().map(|f| f.to_string()).collect(),
        },
        Problem::MissingField(_) => FieldProblem::MissingField,
        Problem::Invalid { value, expected } => FieldProblem::Invalid {
            value: value.unwrap_or_default(),
            expected,
        },
    };
    FieldError::at(file, Some(pos), path.to_string(), problem)
}
