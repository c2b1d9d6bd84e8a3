//! Whether Go's `regexp.Compile` (RE2 syntax, Perl flags, Go 1.25 and later) accepts a regular
//! expression, and if not, its error as Go words it: `error parsing regexp: <kind>: `<text>``.
//!
//! Written by hand because no crate parses Go's dialect: `regex-syntax` reads a different one
//! (nested classes, `(?x)`, `\<`, no `\Q...\E`, `{` never literal, `a**` allowed), so its
//! verdicts would differ from istiod's. This is a validating scanner only: it builds nothing.
//! Go's limits on size and nesting (`expression too large`, `expression nests too deeply`) are not
//! checked: no expression Istio lets through to the compiler (at most 1024 bytes) reaches them.
//! Checked against Go 1.26's `regexp.Compile` on the expressions of the tests below.

/// Go's `regexp/syntax` error codes, by their text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    InvalidCharRange,
    InvalidEscape,
    InvalidNamedCapture,
    InvalidPerlOp,
    InvalidRepeatOp,
    InvalidRepeatSize,
    MissingBracket,
    MissingParen,
    MissingRepeatArgument,
    TrailingBackslash,
    UnexpectedParen,
}

impl Code {
    fn text(self) -> &'static str {
        match self {
            Code::InvalidCharRange => "invalid character class range",
            Code::InvalidEscape => "invalid escape sequence",
            Code::InvalidNamedCapture => "invalid named capture",
            Code::InvalidPerlOp => "invalid or unsupported Perl syntax",
            Code::InvalidRepeatOp => "invalid nested repetition operator",
            Code::InvalidRepeatSize => "invalid repeat count",
            Code::MissingBracket => "missing closing ]",
            Code::MissingParen => "missing closing )",
            Code::MissingRepeatArgument => "missing argument to repetition operator",
            Code::TrailingBackslash => "trailing backslash at end of expression",
            Code::UnexpectedParen => "unexpected )",
        }
    }
}

/// A refused expression: the code and the text Go quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GoRegexError {
    pub code: Code,
    pub expr: String,
}

impl std::fmt::Display for GoRegexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "error parsing regexp: {}: `{}`",
            self.code.text(),
            self.expr
        )
    }
}

fn fail<T>(code: Code, expr: &str) -> Result<T, GoRegexError> {
    Err(GoRegexError {
        code,
        expr: expr.to_string(),
    })
}

/// Go's limit on counted repetition.
const MAX_REPEAT: i64 = 1000;

/// One level of grouping: whether something a repetition can apply to was just written, and the
/// largest product of counted repetitions inside (Go refuses a product over 1000).
#[derive(Default)]
struct Level {
    atom: bool,
    /// The product of counted repetitions of the last atom (1 when none).
    last_product: i64,
    /// The largest product anywhere in this level so far.
    product: i64,
}

impl Level {
    fn new() -> Level {
        Level {
            atom: false,
            last_product: 1,
            product: 1,
        }
    }

    fn atom(&mut self, product: i64) {
        self.atom = true;
        self.last_product = product;
        self.product = self.product.max(product);
    }
}

/// Whether Go would compile `re`.
pub(super) fn check(re: &str) -> Result<(), GoRegexError> {
    let mut levels = vec![Level::new()];
    // The text of the repetition just read, for `a**`.
    let mut last_repeat: Option<usize> = None;
    let mut i = 0;
    let bytes = re.as_bytes();
    while i < re.len() {
        let t = &re[i..];
        let mut repeat: Option<usize> = None;
        match bytes[i] {
            b'(' => {
                if t.starts_with("(?") {
                    match perl_group(t)? {
                        PerlGroup::Flags(len) => {
                            i += len;
                        }
                        PerlGroup::Open(len) => {
                            levels.push(Level::new());
                            i += len;
                        }
                    }
                } else {
                    levels.push(Level::new());
                    i += 1;
                }
            }
            b'|' => {
                let level = levels.last_mut().expect("the top level is never popped");
                level.atom = false;
                i += 1;
            }
            b')' => {
                if levels.len() == 1 {
                    return fail(Code::UnexpectedParen, re);
                }
                let inner = levels.pop().expect("checked above");
                levels
                    .last_mut()
                    .expect("the top level is never popped")
                    .atom(inner.product);
                i += 1;
            }
            b'^' | b'$' | b'.' => {
                levels.last_mut().expect("a level").atom(1);
                i += 1;
            }
            b'[' => {
                i += class(t)?;
                levels.last_mut().expect("a level").atom(1);
            }
            b'*' | b'+' | b'?' => {
                let mut len = 1;
                if t[1..].starts_with('?') {
                    len += 1;
                }
                if let Some(start) = last_repeat {
                    return fail(Code::InvalidRepeatOp, &re[start..i + len]);
                }
                let level = levels.last_mut().expect("a level");
                if !level.atom {
                    return fail(Code::MissingRepeatArgument, &t[..len]);
                }
                repeat = Some(i);
                i += len;
            }
            b'{' => match counted_repeat(t) {
                None => {
                    levels.last_mut().expect("a level").atom(1);
                    i += 1;
                }
                Some((min, max, len)) => {
                    if !(0..=MAX_REPEAT).contains(&min)
                        || max > MAX_REPEAT
                        || (max >= 0 && min > max)
                    {
                        return fail(Code::InvalidRepeatSize, &t[..len]);
                    }
                    let mut total = len;
                    if t[len..].starts_with('?') {
                        total += 1;
                    }
                    if let Some(start) = last_repeat {
                        return fail(Code::InvalidRepeatOp, &re[start..i + total]);
                    }
                    let level = levels.last_mut().expect("a level");
                    if !level.atom {
                        return fail(Code::MissingRepeatArgument, &t[..total]);
                    }
                    let count = if max >= 0 { max } else { min };
                    if (min >= 2 || max >= 2) && count > 0 {
                        let product = level.last_product.saturating_mul(count);
                        if product > MAX_REPEAT {
                            return fail(Code::InvalidRepeatSize, &t[..total]);
                        }
                        level.last_product = product;
                        level.product = level.product.max(product);
                    }
                    repeat = Some(i);
                    i += total;
                }
            },
            b'\\' => {
                let (len, atom) = top_escape(t)?;
                if atom {
                    levels.last_mut().expect("a level").atom(1);
                }
                i += len;
            }
            _ => {
                levels.last_mut().expect("a level").atom(1);
                i += t.chars().next().map_or(1, char::len_utf8);
            }
        }
        last_repeat = repeat;
    }
    if levels.len() > 1 {
        return fail(Code::MissingParen, re);
    }
    Ok(())
}

enum PerlGroup {
    /// Flags only, `(?i)`: this many bytes.
    Flags(usize),
    /// A group opens, `(?i:`, `(?P<name>`, `(?<name>`: this many bytes.
    Open(usize),
}

/// A `(?` construct at the start of `t`.
fn perl_group(t: &str) -> Result<PerlGroup, GoRegexError> {
    let b = t.as_bytes();
    if (t.len() > 4 && b[2] == b'P' && b[3] == b'<') || (t.len() > 3 && b[2] == b'<') {
        let begin = if b[2] == b'<' { 3 } else { 4 };
        let Some(end) = t.find('>') else {
            return fail(Code::InvalidNamedCapture, t);
        };
        let name = &t[begin..end];
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return fail(Code::InvalidNamedCapture, &t[..=end]);
        }
        return Ok(PerlGroup::Open(end + 1));
    }
    let mut negated = false;
    let mut saw_flag = false;
    for (offset, c) in t[2..].char_indices() {
        let upto = 2 + offset + c.len_utf8();
        match c {
            'i' | 'm' | 's' | 'U' => saw_flag = true,
            '-' if !negated => {
                negated = true;
                saw_flag = false;
            }
            ':' | ')' if !negated || saw_flag => {
                return Ok(if c == ':' {
                    PerlGroup::Open(upto)
                } else {
                    PerlGroup::Flags(upto)
                });
            }
            _ => return fail(Code::InvalidPerlOp, &t[..upto]),
        }
    }
    fail(Code::InvalidPerlOp, t)
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `t`: `(min, max or -1, length)`; `None` when it is
/// not one, and `{` is then a literal. Numbers with leading zeros are no numbers; numbers of
/// nine digits or more count as -1 (too big).
fn counted_repeat(t: &str) -> Option<(i64, i64, usize)> {
    let rest = t.strip_prefix('{')?;
    let (min, rest) = go_int(rest)?;
    let (max, rest) = match rest.strip_prefix(',') {
        None => (min, rest),
        Some(rest) if rest.starts_with('}') => (-1, rest),
        Some(rest) => go_int(rest)?,
    };
    let rest = rest.strip_prefix('}')?;
    Some((min, max, t.len() - rest.len()))
}

fn go_int(s: &str) -> Option<(i64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits >= 2 && s.starts_with('0')) {
        return None;
    }
    let mut n: i64 = 0;
    for b in s[..digits].bytes() {
        if n >= 100_000_000 {
            n = -1;
            break;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Some((n, &s[digits..]))
}

/// An escape outside a class: its length, and whether it is something a repetition applies to.
fn top_escape(t: &str) -> Result<(usize, bool), GoRegexError> {
    let b = t.as_bytes();
    if b.len() >= 2 {
        match b[1] {
            b'A' | b'b' | b'B' | b'z' => return Ok((2, true)),
            b'C' => return fail(Code::InvalidEscape, &t[..2]),
            b'Q' => {
                // Literal text up to `\E` or the end.
                let body = &t[2..];
                return Ok(match body.find("\\E") {
                    Some(end) => (2 + end + 2, end > 0),
                    None => (t.len(), !body.is_empty()),
                });
            }
            b'p' | b'P' => return unicode_class(t).map(|len| (len, true)),
            b'd' | b'D' | b's' | b'S' | b'w' | b'W' => return Ok((2, true)),
            _ => {}
        }
    }
    escape(t).map(|len| (len, true))
}

/// `\p{Name}`, `\pL`, `\P...` at the start of `t`: its length, if Go knows the name.
fn unicode_class(t: &str) -> Result<usize, GoRegexError> {
    let rest = &t[2..];
    let Some(c) = rest.chars().next() else {
        return fail(Code::InvalidCharRange, t);
    };
    let (sequence, name) = if c != '{' {
        let len = 2 + c.len_utf8();
        (&t[..len], &t[2..len])
    } else {
        let Some(end) = t.find('}') else {
            return fail(Code::InvalidCharRange, t);
        };
        (&t[..=end], &t[3..end])
    };
    let name = name.strip_prefix('^').unwrap_or(name);
    if unicode_name_known(name) {
        Ok(sequence.len())
    } else {
        fail(Code::InvalidCharRange, sequence)
    }
}

/// Go 1.25's lookup: a leading capital, the rest lower case, `_`, `-` and spaces dropped.
fn canonical(name: &str) -> String {
    let mut out = String::new();
    let mut first = true;
    for c in name.chars() {
        if matches!(c, '_' | '-' | ' ') {
            continue;
        }
        if first {
            out.push(c.to_ascii_uppercase());
            first = false;
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn unicode_name_known(name: &str) -> bool {
    const CATEGORIES: &[&str] = &[
        "C", "Cc", "Cf", "Cn", "Co", "Cs", "L", "Ll", "Lm", "Lo", "Lt", "Lu", "M", "Mc", "Me",
        "Mn", "N", "Nd", "Nl", "No", "P", "Pc", "Pd", "Pe", "Pf", "Pi", "Po", "Ps", "S", "Sc",
        "Sk", "Sm", "So", "Z", "Zl", "Zp", "Zs",
    ];
    const ALIASES: &[&str] = &[
        "Cased_Letter",
        "Close_Punctuation",
        "Combining_Mark",
        "Connector_Punctuation",
        "Control",
        "Currency_Symbol",
        "Dash_Punctuation",
        "Decimal_Number",
        "Enclosing_Mark",
        "Final_Punctuation",
        "Format",
        "Initial_Punctuation",
        "Letter",
        "Letter_Number",
        "Line_Separator",
        "Lowercase_Letter",
        "Mark",
        "Math_Symbol",
        "Modifier_Letter",
        "Modifier_Symbol",
        "Nonspacing_Mark",
        "Number",
        "Open_Punctuation",
        "Other",
        "Other_Letter",
        "Other_Number",
        "Other_Punctuation",
        "Other_Symbol",
        "Paragraph_Separator",
        "Private_Use",
        "Punctuation",
        "Separator",
        "Space_Separator",
        "Spacing_Mark",
        "Surrogate",
        "Symbol",
        "Titlecase_Letter",
        "Unassigned",
        "Uppercase_Letter",
        "cntrl",
        "digit",
        "punct",
    ];
    // Scripts without an underscore; Go 1.25's canonical lookup misses the others.
    const SCRIPTS: &[&str] = &[
        "Adlam",
        "Ahom",
        "Arabic",
        "Armenian",
        "Avestan",
        "Balinese",
        "Bamum",
        "Batak",
        "Bengali",
        "Bhaiksuki",
        "Bopomofo",
        "Brahmi",
        "Braille",
        "Buginese",
        "Buhid",
        "Carian",
        "Chakma",
        "Cham",
        "Cherokee",
        "Chorasmian",
        "Common",
        "Coptic",
        "Cuneiform",
        "Cypriot",
        "Cyrillic",
        "Deseret",
        "Devanagari",
        "Dogra",
        "Duployan",
        "Elbasan",
        "Elymaic",
        "Ethiopic",
        "Georgian",
        "Glagolitic",
        "Gothic",
        "Grantha",
        "Greek",
        "Gujarati",
        "Gurmukhi",
        "Han",
        "Hangul",
        "Hanunoo",
        "Hatran",
        "Hebrew",
        "Hiragana",
        "Inherited",
        "Javanese",
        "Kaithi",
        "Kannada",
        "Katakana",
        "Kawi",
        "Kharoshthi",
        "Khmer",
        "Khojki",
        "Khudawadi",
        "Lao",
        "Latin",
        "Lepcha",
        "Limbu",
        "Lisu",
        "Lycian",
        "Lydian",
        "Mahajani",
        "Makasar",
        "Malayalam",
        "Mandaic",
        "Manichaean",
        "Marchen",
        "Medefaidrin",
        "Miao",
        "Modi",
        "Mongolian",
        "Mro",
        "Multani",
        "Myanmar",
        "Nabataean",
        "Nandinagari",
        "Newa",
        "Nko",
        "Nushu",
        "Ogham",
        "Oriya",
        "Osage",
        "Osmanya",
        "Palmyrene",
        "Phoenician",
        "Rejang",
        "Runic",
        "Samaritan",
        "Saurashtra",
        "Sharada",
        "Shavian",
        "Siddham",
        "SignWriting",
        "Sinhala",
        "Sogdian",
        "Soyombo",
        "Sundanese",
        "Syriac",
        "Tagalog",
        "Tagbanwa",
        "Takri",
        "Tamil",
        "Tangsa",
        "Tangut",
        "Telugu",
        "Thaana",
        "Thai",
        "Tibetan",
        "Tifinagh",
        "Tirhuta",
        "Toto",
        "Ugaritic",
        "Vai",
        "Vithkuqi",
        "Wancho",
        "Yezidi",
        "Yi",
    ];
    let name = canonical(name);
    matches!(name.as_str(), "Any" | "Assigned" | "Ascii" | "Lc")
        || CATEGORIES.contains(&name.as_str())
        || SCRIPTS.contains(&name.as_str())
        || ALIASES.iter().any(|a| canonical(a) == name)
}

/// A single-character escape at the start of `t` (`\n`, `\x41`, `\x{263a}`, `\012`, `\.`): its
/// length.
fn escape(t: &str) -> Result<usize, GoRegexError> {
    let rest = &t[1..];
    let Some(c) = rest.chars().next() else {
        return fail(Code::TrailingBackslash, "");
    };
    let after = 1 + c.len_utf8();
    let octal = |s: &str| {
        s.bytes()
            .take(2)
            .take_while(|b| (b'0'..=b'7').contains(b))
            .count()
    };
    match c {
        '1'..='7' if t[after..].starts_with(|d: char| ('0'..='7').contains(&d)) => {
            Ok(after + octal(&t[after..]))
        }
        '0' => Ok(after + octal(&t[after..])),
        'x' => {
            let hex = &t[after..];
            if hex.starts_with('{') {
                // Any number of hex digits, at least one, up to U+10FFFF; Go quotes up to where
                // it stopped.
                let mut value: u32 = 0;
                let mut upto = after + 1;
                for (digits, c) in t[upto..].chars().enumerate() {
                    upto += c.len_utf8();
                    if c == '}' {
                        if digits == 0 {
                            return fail(Code::InvalidEscape, &t[..upto]);
                        }
                        return Ok(upto);
                    }
                    let Some(v) = c.to_digit(16) else {
                        return fail(Code::InvalidEscape, &t[..upto]);
                    };
                    value = value * 16 + v;
                    if value > 0x10FFFF {
                        return fail(Code::InvalidEscape, &t[..upto]);
                    }
                }
                fail(Code::InvalidEscape, t)
            } else {
                let two: Vec<char> = hex.chars().take(2).collect();
                if two.len() == 2 && two.iter().all(char::is_ascii_hexdigit) {
                    Ok(after + 2)
                } else {
                    let upto = after + two.iter().map(|c| c.len_utf8()).sum::<usize>();
                    fail(Code::InvalidEscape, &t[..upto.min(t.len())])
                }
            }
        }
        'a' | 'f' | 'n' | 'r' | 't' | 'v' => Ok(after),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(after),
        _ => fail(Code::InvalidEscape, &t[..after]),
    }
}

/// A character class at the start of `t`: its length.
fn class(t: &str) -> Result<usize, GoRegexError> {
    let whole = t;
    let mut i = 1;
    if t[i..].starts_with('^') {
        i += 1;
    }
    let mut first = true;
    loop {
        let rest = &t[i..];
        if rest.starts_with(']') && !first {
            return Ok(i + 1);
        }
        first = false;
        if rest.is_empty() {
            return fail(Code::MissingBracket, whole);
        }
        // `[:alpha:]`, `[:^alpha:]`.
        if rest.len() > 2
            && rest.starts_with("[:")
            && let Some(end) = rest[2..].find(":]")
        {
            let name = &rest[..end + 4];
            const POSIX: [&str; 14] = [
                "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print",
                "punct", "space", "upper", "word", "xdigit",
            ];
            let inner = &name[2..name.len() - 2];
            let inner = inner.strip_prefix('^').unwrap_or(inner);
            if !POSIX.contains(&inner) {
                return fail(Code::InvalidCharRange, name);
            }
            i += name.len();
            continue;
        }
        if rest.starts_with("\\p") || rest.starts_with("\\P") {
            i += unicode_class(rest)?;
            continue;
        }
        if rest.len() >= 2
            && rest.starts_with('\\')
            && matches!(rest.as_bytes()[1], b'd' | b'D' | b's' | b'S' | b'w' | b'W')
        {
            i += 2;
            continue;
        }
        let start = i;
        let (low, len) = class_char(&t[i..], whole)?;
        i += len;
        let rest = &t[i..];
        if rest.len() >= 2 && rest.starts_with('-') && !rest[1..].starts_with(']') {
            i += 1;
            let (high, len) = class_char(&t[i..], whole)?;
            i += len;
            if high < low {
                return fail(Code::InvalidCharRange, &t[start..i]);
            }
        }
    }
}

/// One character of a class (a literal or an escape): its value and length.
fn class_char(t: &str, whole: &str) -> Result<(u32, usize), GoRegexError> {
    let Some(c) = t.chars().next() else {
        return fail(Code::MissingBracket, whole);
    };
    if c != '\\' {
        return Ok((c as u32, c.len_utf8()));
    }
    let len = escape(t)?;
    Ok((escape_value(&t[..len]), len))
}

/// The character an escape `escape` accepted stands for.
fn escape_value(e: &str) -> u32 {
    let body = &e[1..];
    match body.as_bytes().first() {
        Some(b'0'..=b'7') => u32::from_str_radix(body, 8).unwrap_or(0),
        Some(b'x') => {
            let hex = body[1..].trim_start_matches('{').trim_end_matches('}');
            u32::from_str_radix(hex, 16).unwrap_or(0)
        }
        Some(b'a') => 7,
        Some(b'f') => 12,
        Some(b'n') => 10,
        Some(b'r') => 13,
        Some(b't') => 9,
        Some(b'v') => 11,
        _ => body.chars().next().map_or(0, |c| c as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(re: &str) -> Result<(), String> {
        check(re).map_err(|e| e.to_string())
    }

    #[test]
    fn what_go_accepts() {
        for re in [
            "",
            "abc",
            "^/politics(/.*)?$",
            "a{2}",
            "a{2,}",
            "a{2,5}?",
            "a{",
            "a{,5}",
            "x{01}",
            "[]a]",
            "[^]a]",
            "[a-]",
            "[a[]",
            "[[:alpha:][:^digit:]]",
            r"\Qa.b*\E+",
            r"\x41\x{263a}\012\0\.",
            r"\pL\p{Greek}\p{^Lu}\PL\p{Letter}\p{any}",
            "(?i)abc(?-i:x)(?P<name>y)(?<other>z)",
            "(?)",
            "^*",
            r"\b+",
            "a*?",
            "(a)*",
            "x|y|",
            "a{1000}",
            "(a{10}){100}",
            "(a*){1000}",
            "x{1000,}",
            "x{,}",
            "(?P<n>a)(?P<n>b)",
            "a|",
            "()+",
            "(|a)*",
            "$*",
            "[a-b-c]",
            r"[\d-z]",
            "[[:foo]",
            r"\Q",
            r"\pZ\p{lu}\p{ L u }\p{Cased Letter}\p{greek}\P{^Greek}",
            r"\x{ffff}\x{41}x\0123\01234\17",
            r"\a\f\v\-\_\<\>\z\A\B",
            "(?s).(?U)a+(?im-s:a)(?-i)(?i-m)",
            "a{0}",
        ] {
            assert_eq!(go(re), Ok(()), "{re:?}");
        }
    }

    #[test]
    fn what_go_refuses_and_how_it_says_so() {
        for (re, message) in [
            ("[a", "missing closing ]: `[a`"),
            ("(?=x)", "invalid or unsupported Perl syntax: `(?=`"),
            ("(?!x)", "invalid or unsupported Perl syntax: `(?!`"),
            ("(?x)a", "invalid or unsupported Perl syntax: `(?x`"),
            ("(?i-)a", "invalid or unsupported Perl syntax: `(?i-)`"),
            ("(a", "missing closing ): `(a`"),
            ("a)", "unexpected ): `a)`"),
            ("*a", "missing argument to repetition operator: `*`"),
            ("a|*", "missing argument to repetition operator: `*`"),
            ("(+)", "missing argument to repetition operator: `+`"),
            ("a**", "invalid nested repetition operator: `**`"),
            ("a*?+", "invalid nested repetition operator: `*?+`"),
            ("a{2}{3}", "invalid nested repetition operator: `{2}{3}`"),
            ("a{1001}", "invalid repeat count: `{1001}`"),
            ("a{3,2}", "invalid repeat count: `{3,2}`"),
            ("(a{100}){100}", "invalid repeat count: `{100}`"),
            ("z-a[z-a]", "invalid character class range: `z-a`"),
            ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
            (r"\p{Foo}", r"invalid character class range: `\p{Foo}`"),
            (r"\q", r"invalid escape sequence: `\q`"),
            (r"\1", r"invalid escape sequence: `\1`"),
            (r"\8", r"invalid escape sequence: `\8`"),
            (r"\C", r"invalid escape sequence: `\C`"),
            (r"[\b]", r"invalid escape sequence: `\b`"),
            (r"\xZ1", r"invalid escape sequence: `\xZ1`"),
            (r"\x{110000}", r"invalid escape sequence: `\x{110000`"),
            (r"\x{0041", r"invalid escape sequence: `\x{0041`"),
            (r"\x4", r"invalid escape sequence: `\x4`"),
            ("{1}", "missing argument to repetition operator: `{1}`"),
            (r"\Q\E*", "missing argument to repetition operator: `*`"),
            ("(?i)*", "missing argument to repetition operator: `*`"),
            ("x{2}*", "invalid nested repetition operator: `{2}*`"),
            ("a{2}?{3}", "invalid nested repetition operator: `{2}?{3}`"),
            ("a?*", "invalid nested repetition operator: `?*`"),
            ("(a{2}|b{600}){2}", "invalid repeat count: `{2}`"),
            ("x{1,1001}", "invalid repeat count: `{1,1001}`"),
            ("a{99999999999}", "invalid repeat count: `{99999999999}`"),
            ("[^]", "missing closing ]: `[^]`"),
            ("[[:alpha:]", "missing closing ]: `[[:alpha:]`"),
            ("(?:", "missing closing ): `(?:`"),
            ("(?i", "invalid or unsupported Perl syntax: `(?i`"),
            ("(?P=n)", "invalid or unsupported Perl syntax: `(?P`"),
            ("(?<=a)b", "invalid named capture: `(?<=a)b`"),
            (r"[\0-\7]", r"invalid escape sequence: `\7`"),
            (r"\18", r"invalid escape sequence: `\1`"),
            (r"[z-\x61]", r"invalid character class range: `z-\x61`"),
            (r"[a-\d]", r"invalid escape sequence: `\d`"),
            (r"\p", r"invalid character class range: `\p`"),
            (r"\p{", r"invalid character class range: `\p{`"),
            (
                r"\p{Old_Italic}",
                r"invalid character class range: `\p{Old_Italic}`",
            ),
            ("\\é", "invalid escape sequence: `\\é`"),
            (r"\e", r"invalid escape sequence: `\e`"),
            (r"\Z", r"invalid escape sequence: `\Z`"),
            (r"\x{}", r"invalid escape sequence: `\x{}`"),
            ("\\", "trailing backslash at end of expression: ``"),
            ("(?P<>a)", "invalid named capture: `(?P<>`"),
            ("(?P<a-b>x)", "invalid named capture: `(?P<a-b>`"),
        ] {
            assert_eq!(
                go(re),
                Err(format!("error parsing regexp: {message}")),
                "{re:?}"
            );
        }
    }
}
