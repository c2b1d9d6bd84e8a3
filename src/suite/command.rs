//! The commands a suite may run, as a whitelist: `curl` with the options the tutorials use and a
//! few more, writing only to standard output or `/dev/null`, fetching only `http://` and
//! `https://` URLs. A command is never given to a shell: it is split into words as a POSIX shell
//! would split it, and anything a shell would treat as syntax (`;`, `|`, `&`, `$`, backticks,
//! redirections, ...) is refused instead of being passed to curl as a literal.
//!
//! What it does not do: add the local network's flags (that is `crate::local_network`), or run
//! anything.

use std::fmt;

use crate::yaml::Pos;

/// A refused command: the word at fault, where it starts in the command's text, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommandError {
    /// The word (or the character) at fault, as written.
    pub word: String,
    /// Its byte offset in the command's text.
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.word, self.reason)
    }
}

/// Where in the suite's `text` the word `error` names is written: its line and column. The
/// command's value starts at `value` and belongs to the key at `key`; the word is looked for in
/// the value's text, which runs on while lines are indented deeper than the key. A word YAML
/// escaping has changed beyond recognition is reported at the value's start.
pub(crate) fn position_of(
    text: &str,
    key: Pos,
    value: Pos,
    error: &CommandError,
) -> (usize, usize) {
    let fallback = (value.line, value.column.max(1));
    if error.word.is_empty() || value.line == 0 {
        return fallback;
    }
    for (index, line) in text.lines().enumerate().skip(value.line - 1) {
        let number = index + 1;
        let from = if number == value.line {
            // Columns count characters; find the byte where the value starts.
            line.char_indices()
                .nth(value.column.saturating_sub(1))
                .map_or(line.len(), |(i, _)| i)
        } else {
            let indent = line.len() - line.trim_start().len();
            if !line.trim().is_empty() && indent < key.column {
                break;
            }
            0
        };
        if let Some(found) = line[from..].find(&error.word) {
            let column = line[..from + found].chars().count() + 1;
            return (number, column);
        }
    }
    fallback
}

/// One word of a command, unquoted, with where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    text: String,
    /// As written, quotes included.
    raw: String,
    offset: usize,
}

/// What follows an option on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// A flag: nothing.
    None,
    /// Where output goes: standard output (`-`, `/dev/stdout`) or `/dev/null`.
    Output,
    /// An HTTP header line; `@file` (read headers from a file) is refused.
    Header,
    /// `-w` format; `@file` and `%output{...}` (which writes a file) are refused.
    WriteOut,
    /// An HTTP method: letters only.
    Method,
    /// Seconds, as curl takes them: a decimal number.
    Seconds,
    /// Free text that curl only sends (a user agent).
    Text,
}

/// The curl options a suite may use: `(short, long, value)`. The first group is what the
/// tutorials of the series run; the second is the documented set besides (README).
const OPTIONS: &[(Option<char>, &str, Value)] = &[
    // The tutorials'.
    (Some('s'), "silent", Value::None),
    (Some('S'), "show-error", Value::None),
    (Some('L'), "location", Value::None),
    (Some('I'), "head", Value::None),
    (Some('v'), "verbose", Value::None),
    (Some('o'), "output", Value::Output),
    (Some('D'), "dump-header", Value::Output),
    (Some('H'), "header", Value::Header),
    (Some('w'), "write-out", Value::WriteOut),
    // Besides.
    (Some('i'), "include", Value::None),
    (Some('f'), "fail", Value::None),
    (None, "http1.1", Value::None),
    (Some('X'), "request", Value::Method),
    (Some('m'), "max-time", Value::Seconds),
    (None, "connect-timeout", Value::Seconds),
    (Some('A'), "user-agent", Value::Text),
];

/// The options, for messages: `-s/--silent, ...`.
pub(crate) fn allowed_options() -> String {
    OPTIONS
        .iter()
        .map(|(short, long, _)| match short {
            Some(c) => format!("-{c}/--{long}"),
            None => format!("--{long}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The words of `text` if it is an allowed curl command.
pub(crate) fn parse_command(text: &str) -> Result<Vec<String>, CommandError> {
    let words = split(text)?;
    let Some(first) = words.first() else {
        return Err(CommandError {
            word: String::new(),
            offset: 0,
            reason: "the command is empty; a suite runs curl".into(),
        });
    };
    if first.text != "curl" {
        return Err(CommandError {
            word: first.raw.clone(),
            offset: first.offset,
            reason: "only curl commands are supported".into(),
        });
    }
    let mut urls = 0;
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        let refuse = |reason: String| CommandError {
            word: word.raw.clone(),
            offset: word.offset,
            reason,
        };
        if let Some(long) = word.text.strip_prefix("--") {
            let (_, _, value) = OPTIONS
                .iter()
                .find(|(_, name, _)| *name == long)
                .ok_or_else(|| refuse(unknown_option()))?;
            if *value != Value::None {
                let Some(next) = rest.next() else {
                    return Err(refuse(format!("{} needs a value", word.text)));
                };
                check_value(*value, &word.text, next)?;
            }
        } else if let Some(cluster) = word.text.strip_prefix('-').filter(|c| !c.is_empty()) {
            // `-sSL`, `-so /dev/null`, `-o/dev/null`: flags, the last of which may take a value.
            for (i, c) in cluster.char_indices() {
                let (_, _, value) = OPTIONS
                    .iter()
                    .find(|(short, _, _)| *short == Some(c))
                    .ok_or_else(|| refuse(unknown_option()))?;
                if *value == Value::None {
                    continue;
                }
                let attached = &cluster[i + c.len_utf8()..];
                let name = format!("-{c}");
                if attached.is_empty() {
                    let Some(next) = rest.next() else {
                        return Err(refuse(format!("{name} needs a value")));
                    };
                    check_value(*value, &name, next)?;
                } else {
                    let value_word = Word {
                        text: attached.to_string(),
                        raw: word.raw.clone(),
                        offset: word.offset,
                    };
                    check_value(*value, &name, &value_word)?;
                }
                break;
            }
        } else {
            check_url(word)?;
            urls += 1;
        }
    }
    if urls == 0 {
        return Err(CommandError {
            word: text.trim().to_string(),
            offset: 0,
            reason: "no URL: curl needs an http:// or https:// URL".into(),
        });
    }
    Ok(words.into_iter().map(|w| w.text).collect())
}

fn unknown_option() -> String {
    format!(
        "this curl option is not allowed in a suite; allowed: {}",
        allowed_options()
    )
}

fn check_value(value: Value, option: &str, word: &Word) -> Result<(), CommandError> {
    let text = word.text.as_str();
    let refuse = |reason: String| {
        Err(CommandError {
            word: word.raw.clone(),
            offset: word.offset,
            reason,
        })
    };
    match value {
        Value::None => Ok(()),
        Value::Output => match text {
            "-" | "/dev/stdout" | "/dev/null" => Ok(()),
            _ => refuse(format!(
                "{option} may write only to standard output (`-`) or /dev/null, never a file"
            )),
        },
        Value::Header if text.starts_with('@') => refuse(format!(
            "{option} @file reads a local file; write the header itself"
        )),
        Value::WriteOut if text.starts_with('@') => refuse(format!(
            "{option} @file reads a local file; write the format itself"
        )),
        Value::WriteOut if text.contains("%output{") => {
            refuse(format!("{option} %output{{...}} writes a local file"))
        }
        Value::Method if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphabetic()) => {
            Ok(())
        }
        Value::Method => refuse(format!("{option} takes an HTTP method, such as GET")),
        Value::Seconds
            if !text.is_empty()
                && text.chars().all(|c| c.is_ascii_digit() || c == '.')
                && text.parse::<f64>().is_ok() =>
        {
            Ok(())
        }
        Value::Seconds => refuse(format!("{option} takes a number of seconds")),
        Value::Header | Value::WriteOut | Value::Text => Ok(()),
    }
}

/// An `http://` or `https://` URL, with a host, that curl will not expand as a glob.
fn check_url(word: &Word) -> Result<(), CommandError> {
    let refuse = |reason: &str| {
        Err(CommandError {
            word: word.raw.clone(),
            offset: word.offset,
            reason: reason.to_string(),
        })
    };
    let url = word.text.as_str();
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return refuse(
            "not an allowed URL: a suite fetches http:// and https:// URLs only (scheme in lower case)",
        );
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if authority.is_empty() || authority.starts_with(':') {
        return refuse("the URL has no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("a URL may not contain spaces or control characters");
    }
    // curl expands `{a,b}` and `[1-9]` into several URLs; brackets are fine around an IPv6 host.
    let path = &rest[authority.len()..];
    let host_brackets_ok = authority.starts_with('[')
        && authority.matches('[').count() == 1
        && authority.matches(']').count() == 1;
    if url.contains(['{', '}'])
        || path.contains(['[', ']'])
        || (authority.contains(['[', ']']) && !host_brackets_ok)
    {
        return refuse("curl would expand `{...}` or `[...]` in a URL into several requests");
    }
    Ok(())
}

/// Split `text` into words as a POSIX shell would, refusing what a shell would treat as syntax.
fn split(text: &str) -> Result<Vec<Word>, CommandError> {
    let syntax = |c: char, offset: usize, word_start: Option<usize>| CommandError {
        word: word_start
            .map(|start| shell_word_at(text, start))
            .unwrap_or_else(|| c.to_string()),
        offset: word_start.unwrap_or(offset),
        reason: format!(
            "shell syntax ({}) is not allowed: the command is run as curl's own arguments, without a shell",
            describe(c)
        ),
    };
    let text_trimmed = text.trim_end();
    let mut words = Vec::new();
    let mut chars = text_trimmed.char_indices().peekable();
    let mut current: Option<(usize, String)> = None;
    while let Some((i, c)) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some((start, word)) = current.take() {
                    words.push(Word {
                        text: word,
                        raw: text[start..i].to_string(),
                        offset: start,
                    });
                }
            }
            '\'' => {
                let (start, word) = current.get_or_insert_with(|| (i, String::new()));
                let start = *start;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                        None => {
                            return Err(CommandError {
                                word: text[start..].to_string(),
                                offset: start,
                                reason: "unterminated single quote".into(),
                            });
                        }
                    }
                }
            }
            '"' => {
                let (start, word) = current.get_or_insert_with(|| (i, String::new()));
                let start = *start;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some((_, c @ ('"' | '\\'))) => {
                                word.push(*c);
                                chars.next();
                            }
                            Some((j, c @ ('$' | '`' | '\n'))) => {
                                return Err(syntax(*c, *j, Some(start)));
                            }
                            _ => word.push('\\'),
                        },
                        Some((j, c @ ('$' | '`'))) => return Err(syntax(c, j, Some(start))),
                        Some((_, c)) => word.push(c),
                        None => {
                            return Err(CommandError {
                                word: text[start..].to_string(),
                                offset: start,
                                reason: "unterminated double quote".into(),
                            });
                        }
                    }
                }
            }
            '\\' => {
                let start = current.as_ref().map_or(i, |(s, _)| *s);
                match chars.next() {
                    Some((j, '\n')) => return Err(syntax('\n', j, Some(start))),
                    Some((_, c)) => {
                        current.get_or_insert_with(|| (i, String::new())).1.push(c);
                    }
                    None => {
                        return Err(CommandError {
                            word: "\\".into(),
                            offset: i,
                            reason: "a trailing backslash escapes nothing".into(),
                        });
                    }
                }
            }
            ';' | '&' | '|' | '<' | '>' | '(' | ')' | '$' | '`' | '\n' => {
                return Err(syntax(c, i, current.as_ref().map(|(s, _)| *s).or(Some(i))));
            }
            '#' if current.is_none() => return Err(syntax(c, i, Some(i))),
            c => current.get_or_insert_with(|| (i, String::new())).1.push(c),
        }
    }
    if let Some((start, word)) = current.take() {
        words.push(Word {
            text: word,
            raw: text_trimmed[start..].to_string(),
            offset: start,
        });
    }
    Ok(words)
}

/// The whitespace-delimited text starting at `start`, for messages.
fn shell_word_at(text: &str, start: usize) -> String {
    text[start..]
        .split([' ', '\t', '\n'])
        .next()
        .unwrap_or_default()
        .to_string()
}

fn describe(c: char) -> &'static str {
    match c {
        ';' => "`;` ends a command",
        '&' => "`&` runs in the background or joins commands",
        '|' => "`|` is a pipe",
        '<' | '>' => "a redirection",
        '(' | ')' => "a subshell",
        '$' => "`$` expands a variable or a command",
        '`' => "a backtick runs a command",
        '\n' => "a line break ends a command",
        '#' => "`#` starts a comment",
        _ => "a special character",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<String> {
        parse_command(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn refused(text: &str) -> CommandError {
        match parse_command(text) {
            Ok(argv) => panic!("{text}: accepted as {argv:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn the_tutorials_commands_are_allowed() {
        assert_eq!(
            ok("curl -sL -o /dev/null -D - http://edition.cnn.com/politics"),
            [
                "curl",
                "-sL",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "http://edition.cnn.com/politics"
            ]
        );
        assert_eq!(
            ok(
                "curl -s -o /dev/null -D - -H 'Host: edition.cnn.com' http://istio-egressgateway.istio-system.svc.cluster.local:443/politics"
            )[7],
            "Host: edition.cnn.com"
        );
        ok("curl -sSI https://www.google.com");
        ok("curl -sS http://httpbin.org/headers");
        ok("curl -o /dev/null -sS -w \"%{http_code}\\n\" http://httpbin.org/delay/5");
        ok("curl -so/dev/null --max-time 2.5 -X HEAD http://[::1]:8080/x?a=b");
        ok("curl --silent --header \"x-a: \\\"b\\\"\" https://a.example.com\n");
    }

    #[test]
    fn output_goes_only_to_stdout_or_dev_null() {
        let error = refused("curl -s -o /tmp/x http://edition.cnn.com/");
        assert_eq!(error.word, "/tmp/x");
        assert_eq!(error.offset, 11);
        assert!(error.reason.contains("standard output"), "{error}");
        assert_eq!(
            refused("curl -so/tmp/x http://a.example.com/").word,
            "-so/tmp/x"
        );
        assert_eq!(
            refused("curl -D out.txt http://a.example.com/").word,
            "out.txt"
        );
        for option in [
            "-O",
            "--remote-name",
            "-K",
            "--config",
            "--stderr",
            "-T",
            "--trace",
        ] {
            let error = refused(&format!("curl {option} x http://a.example.com/"));
            assert_eq!(error.word, option);
            assert!(error.reason.contains("not allowed"), "{error}");
        }
        assert!(
            refused("curl -H @/etc/passwd http://a.example.com/")
                .reason
                .contains("@file")
        );
        assert!(
            refused("curl -w '%output{/tmp/x}%{http_code}' http://a.example.com/")
                .reason
                .contains("%output")
        );
        // curl takes no `--option=value`; neither does a suite.
        assert_eq!(
            refused("curl --output=/dev/null http://a.example.com/").word,
            "--output=/dev/null"
        );
    }

    #[test]
    fn only_http_and_https_urls() {
        let error = refused("curl -o /tmp/y file:///etc/hostname");
        assert_eq!(error.word, "/tmp/y");
        let error = refused("curl file:///etc/hostname");
        assert_eq!(
            (error.word.as_str(), error.offset),
            ("file:///etc/hostname", 5)
        );
        for url in [
            "ftp://a.example.com/",
            "HTTP://a.example.com/",
            "a.example.com/x",
            "http:///x",
            "http://a.example.com/{a,b}",
            "http://a.example.com/[1-9]",
            "gopher://a",
        ] {
            assert_eq!(refused(&format!("curl {url}")).word, url, "{url}");
        }
        assert!(refused("curl -s").reason.contains("no URL"));
        assert!(refused("curl -o").reason.contains("needs a value"));
    }

    #[test]
    fn shell_syntax_is_refused_naming_the_word() {
        for (text, word, offset) in [
            (
                "curl http://a.example.com/; rm -rf /",
                "http://a.example.com/;",
                5,
            ),
            ("curl http://a.example.com/ && ls", "&&", 27),
            ("curl http://a.example.com/ | grep x", "|", 27),
            ("curl $(id) http://a.example.com/", "$(id)", 5),
            ("curl `id` http://a.example.com/", "`id`", 5),
            ("curl \"$HOME\" http://a.example.com/", "\"$HOME\"", 5),
            ("curl http://a.example.com/ > /tmp/x", ">", 27),
            ("curl http://a.example.com/ # comment", "#", 27),
            ("curl -s\nls http://a.example.com/", "-s", 5),
        ] {
            let error = refused(text);
            assert_eq!(
                (error.word.as_str(), error.offset),
                (word, offset),
                "{text}"
            );
            assert!(error.reason.starts_with("shell syntax"), "{text}: {error}");
        }
        // Quoted, the same characters are curl's.
        ok("curl -H 'x: a;b|c$(d)`e`' http://a.example.com/");
        ok("curl -H \"x: a;b|c\" http://a.example.com/");
        ok("curl 'http://a.example.com/?q=a&b=c'");
        assert!(
            refused("curl 'http://a.example.com/")
                .reason
                .contains("unterminated")
        );
    }

    #[test]
    fn the_word_is_found_where_the_suite_writes_it() {
        let text = "commands:\n  a: curl -o /tmp/x http://e.com/\n  b: >-\n    curl -s\n    -o /tmp/y http://e.com/\nstages: []\n";
        let error = |word: &str| CommandError {
            word: word.into(),
            offset: 0,
            reason: String::new(),
        };
        let pos = |line, column| Pos { line, column };
        assert_eq!(
            position_of(text, pos(2, 3), pos(2, 6), &error("/tmp/x")),
            (2, 14)
        );
        assert_eq!(
            position_of(text, pos(3, 3), pos(3, 6), &error("/tmp/y")),
            (5, 8)
        );
        // Not beyond the value: reported at its start.
        assert_eq!(
            position_of(text, pos(2, 3), pos(2, 6), &error("stages")),
            (2, 6)
        );
    }

    #[test]
    fn only_curl() {
        let error = refused("ls -la");
        assert_eq!((error.word.as_str(), error.offset), ("ls", 0));
        assert_eq!(
            refused("/usr/bin/curl http://a.example.com/").word,
            "/usr/bin/curl"
        );
        assert!(refused("").reason.contains("empty"));
    }
}
