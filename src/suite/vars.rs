//! The shell variables a tutorial's heredocs use (`$MYSQL_DB_IP`, `${MONGODB_PORT}`): the suite's
//! `vars:` gives their values, and they are expanded in fixtures and commands as the shell
//! expands an unquoted `<<EOF` heredoc, before anything is parsed. A variable a fixture uses and
//! the suite does not set is an error at its line and column, where the shell would silently
//! expand it to nothing.
//!
//! What it does not do: the rest of the shell's expansions (command substitution, `$(( ))`,
//! defaults such as `${X:-y}`); a `$` that starts none of the two forms is kept as written.

use std::collections::BTreeMap;

/// A variable used where the suite gives it no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{line}:{column}: ${name} is not set: the tutorial's shell expands it; give it a value under `vars`"
)]
pub(crate) struct UnsetVariable {
    pub name: String,
    /// 1-based, in the text as written.
    pub line: usize,
    pub column: usize,
}

/// `text` with every `$NAME` and `${NAME}` replaced by its value. Line numbers are kept: values
/// are single words, so an expanded fixture's errors still point at the lines as written.
pub(crate) fn expand(text: &str, vars: &BTreeMap<String, String>) -> Result<String, UnsetVariable> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut column = 1;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            column += rest[..at].chars().count();
            let after = &rest[at + 1..];
            let (name, used) = if let Some(braced) = after.strip_prefix('{') {
                match braced.find('}') {
                    Some(end) if is_name(&braced[..end]) => (&braced[..end], end + 2),
                    _ => ("", 0),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                if is_name(&after[..end]) {
                    (&after[..end], end)
                } else {
                    ("", 0)
                }
            };
            if name.is_empty() {
                out.push('$');
                rest = after;
                column += 1;
                continue;
            }
            let value = vars.get(name).ok_or_else(|| UnsetVariable {
                name: name.to_string(),
                line: index + 1,
                column,
            })?;
            out.push_str(value);
            column += 1 + used;
            rest = &after[used..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// A shell variable name: a letter or `_`, then letters, digits and `_`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether a variable value can stand in a heredoc line without changing its line structure.
pub(crate) fn valid_value(value: &str) -> bool {
    !value.is_empty() && !value.contains(['\n', '\r'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("MYSQL_DB_IP", "192.0.2.10"), ("MYSQL_DB_PORT", "3306")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into()
    }

    #[test]
    fn expands_both_forms_as_the_shell_does() {
        let text = "  - $MYSQL_DB_IP/32\n    number: ${MYSQL_DB_PORT}\n";
        assert_eq!(
            expand(text, &vars()).unwrap(),
            "  - 192.0.2.10/32\n    number: 3306\n"
        );
        // Not a variable: kept as written.
        assert_eq!(expand("a $ b $1 ${ }", &vars()).unwrap(), "a $ b $1 ${ }");
    }

    #[test]
    fn an_unset_variable_is_an_error_at_its_place() {
        let err = expand("hosts:\n  - $MYSQL_DB_HOST\n", &vars()).unwrap_err();
        assert_eq!(
            err,
            UnsetVariable {
                name: "MYSQL_DB_HOST".into(),
                line: 2,
                column: 5
            }
        );
        let err = expand("x: $MYSQL_DB_IP ${NOPE}", &vars()).unwrap_err();
        assert_eq!((err.line, err.column), (1, 17));
        assert!(err.to_string().contains("$NOPE is not set"), "{err}");
    }
}
