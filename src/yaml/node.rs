//! The located tree a YAML document is read into: every value with the line and column it was
//! written at, so that every error can say where.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// How a duplicate key error begins, so the stream reader can report it at its place.
pub(crate) const DUPLICATE_KEY: &str = "duplicate key `";

pub(crate) fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A 1-based position in the manifest; column 0 when the parser did not know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub(crate) fn column(self) -> Option<usize> {
        (self.column > 0).then_some(self.column)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Yaml,
}

#[derive(Debug, Clone)]
pub(crate) enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The entry for `key` in a mapping: its key and value nodes.
    pub(crate) fn get(&self, key: &str) -> Option<(&Node, &Node)> {
        match &self.value {
            Yaml::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// A scalar as its text, the way a mapping key is read; `None` for a sequence or mapping.
    pub(crate) fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Yaml::Null => Some("null".to_string()),
            Yaml::Bool(b) => Some(b.to_string()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::UInt(u) => Some(u.to_string()),
            Yaml::Float(f) => Some(f.to_string()),
            Yaml::Str(s) => Some(s.clone()),
            Yaml::Seq(_) | Yaml::Map(_) => None,
        }
    }

    /// The value as an error message shows it.
    pub(crate) fn text(&self) -> String {
        match &self.value {
            Yaml::Seq(_) => "[...]".to_string(),
            Yaml::Map(_) => "{...}".to_string(),
            _ => self.scalar_text().unwrap_or_default(),
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Yaml>::deserialize(deserializer)?;
        // `referenced`, not `defined`: for an alias, the place it is used is what the user
        // must fix.
        let location = spanned.referenced;
        Ok(Node {
            pos: Pos {
                line: to_usize(location.line()),
                column: to_usize(location.column()),
            },
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_none<E>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Yaml, D::Error> {
        deserializer.deserialize_any(YamlVisitor)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Yaml, E> {
        Ok(Yaml::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Yaml::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value()?;
            // Kubernetes refuses a manifest with a key twice; so do we, saying where both are.
            if let Some(text) = key.scalar_text()
                && let Some((first, _)) = entries
                    .iter()
                    .find(|(k, _)| k.scalar_text().as_deref() == Some(text.as_str()))
            {
                return Err(de::Error::custom(format!(
                    "{DUPLICATE_KEY}{text}` at line {}, column {} (first at line {})",
                    key.pos.line, key.pos.column, first.pos.line
                )));
            }
            entries.push((key, value));
        }
        Ok(Yaml::Map(entries))
    }
}

/// The document as JSON, the shape a Kubernetes API takes it in; `Err` names a key that is not a
/// scalar, which JSON cannot hold.
pub(crate) fn to_json(node: &Node) -> Result<serde_json::Value, Pos> {
    use serde_json::Value;
    Ok(match &node.value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Int(i) => Value::from(*i),
        Yaml::UInt(u) => Value::from(*u),
        // The parser rejects NaN and infinities (its default policy), so this is never Null.
        Yaml::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Yaml::Str(s) => Value::String(s.clone()),
        Yaml::Seq(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Map(entries) => {
            let mut object = serde_json::Map::new();
            for (key, value) in entries {
                let key_text = key.scalar_text().ok_or(key.pos)?;
                object.insert(key_text, to_json(value)?);
            }
            Value::Object(object)
        }
    })
}

/// A duplicate key as the tree reported it.
pub(crate) struct Duplicate {
    pub key: String,
    pub at: Pos,
    pub first_line: usize,
}

/// The duplicate key the tree's own error describes, if that is what `message` is.
pub(crate) fn parse_duplicate(message: &str) -> Option<Duplicate> {
    let rest = &message[message.find(DUPLICATE_KEY)? + DUPLICATE_KEY.len()..];
    let (key, rest) = rest.split_once("` at line ")?;
    let (line, rest) = rest.split_once(", column ")?;
    let (column, rest) = rest.split_once(" (first at line ")?;
    let first_line = rest.split(')').next()?;
    Some(Duplicate {
        key: key.to_string(),
        at: Pos {
            line: line.trim().parse().ok()?,
            column: column.trim().parse().ok()?,
        },
        first_line: first_line.trim().parse().ok()?,
    })
}
