//! A serde `Deserializer` over the located tree that knows each value's path and position, so
//! that a typed model (`#[serde(deny_unknown_fields)]`) read through it fails with the field's
//! path, line and column. [`Untranslated`] marks a field the builtin control plane does not
//! translate; every place one is set is noted in the [`Record`].

use std::cell::RefCell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::node::{Node, Pos, Yaml};
use super::path::FieldPath;

/// The name by which [`NodeDe`] recognises [`Untranslated`].
const UNTRANSLATED: &str = "$egress_conformance::yaml::Untranslated";

/// What a decode noted besides the value.
#[derive(Debug, Default)]
pub(crate) struct Record {
    untranslated: RefCell<Vec<(FieldPath, Pos)>>,
}

impl Record {
    fn untranslated(&self, path: &FieldPath, pos: Pos) {
        self.untranslated.borrow_mut().push((path.clone(), pos));
    }

    /// Every field marked [`Untranslated`] that was set, in document order.
    pub(crate) fn into_untranslated(self) -> Vec<(FieldPath, Pos)> {
        self.untranslated.into_inner()
    }
}

fn one_of<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    format!(
        "one of {}",
        names.into_iter().collect::<Vec<_>>().join(", ")
    )
}

#[derive(Debug)]
pub(crate) struct DecodeError {
    pub problem: Problem,
    /// Set by the innermost node the error passes through.
    pub at: Option<(FieldPath, Pos)>,
}

#[derive(Debug)]
pub(crate) enum Problem {
    UnknownField {
        field: String,
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    /// `value` is filled in from the node when the error reaches it.
    Invalid {
        value: Option<String>,
        expected: String,
    },
}

impl DecodeError {
    fn new(problem: Problem) -> Self {
        DecodeError { problem, at: None }
    }

    fn at(mut self, path: &FieldPath, node: &Node) -> Self {
        if self.at.is_none() {
            let path = match &self.problem {
                // Raised by the mapping the field is missing from.
                Problem::MissingField(field) => path.key(field),
                _ => path.clone(),
            };
            self.at = Some((path, node.pos));
            if let Problem::Invalid {
                value: value @ None,
                ..
            } = &mut self.problem
            {
                *value = Some(node.text());
            }
        }
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::UnknownField { field, .. } => write!(f, "unknown field `{field}`"),
            Problem::MissingField(field) => write!(f, "missing field `{field}`"),
            Problem::Invalid { expected, .. } => write!(f, "invalid value: expected {expected}"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::new(Problem::Invalid {
            value: None,
            expected: msg.to_string(),
        })
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        let found = match unexpected {
            de::Unexpected::Unit => "null".to_string(),
            other => other.to_string(),
        };
        DecodeError::new(Problem::Invalid {
            value: None,
            expected: format!("{expected}, found {found}"),
        })
    }

    fn invalid_value(_: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DecodeError::new(Problem::Invalid {
            value: None,
            expected: expected.to_string(),
        })
    }

    fn invalid_length(len: usize, expected: &dyn de::Expected) -> Self {
        DecodeError::new(Problem::Invalid {
            value: None,
            expected: format!("{expected}, found {len} elements"),
        })
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DecodeError::new(Problem::Invalid {
            value: Some(variant.to_string()),
            expected: one_of(expected.iter().copied()),
        })
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DecodeError::new(Problem::UnknownField {
            field: field.to_string(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        DecodeError::new(Problem::MissingField(field))
    }
}

/// Deserializes one node; `record` collects what the typed model asks to have noted.
pub(crate) struct NodeDe<'n, 'r> {
    pub node: &'n Node,
    pub path: FieldPath,
    pub record: &'r Record,
}

impl NodeDe<'_, '_> {
    /// A node of the wrong shape, at its place.
    fn refuse(&self, found: de::Unexpected<'_>, expected: &str) -> DecodeError {
        <DecodeError as de::Error>::invalid_type(found, &expected).at(&self.path, self.node)
    }
}

impl NodeDe<'_, '_> {
    /// Any value; in a mapping, `fields` says whether its keys are a struct's fields (where a
    /// null value means unset, as Kubernetes has it) or a map's keys (where a null value is a
    /// value of the wrong type, as the API server refuses it).
    fn any<'de, V: Visitor<'de>>(self, visitor: V, fields: bool) -> Result<V::Value, DecodeError> {
        let NodeDe { node, path, record } = self;
        let result = match &node.value {
            Yaml::Null => visitor.visit_unit(),
            Yaml::Bool(b) => visitor.visit_bool(*b),
            Yaml::Int(i) => visitor.visit_i64(*i),
            Yaml::UInt(u) => visitor.visit_u64(*u),
            Yaml::Float(f) => visitor.visit_f64(*f),
            Yaml::Str(s) => visitor.visit_str(s),
            Yaml::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter().enumerate(),
                path: &path,
                record,
            }),
            Yaml::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                path: &path,
                value: None,
                record,
                fields,
            }),
        };
        result.map_err(|error| error.at(&path, node))
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'_, '_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.any(visitor, true)
    }

    /// A map's values are all values: `key: null` is not "unset".
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.any(visitor, false)
    }

    /// Null or absent are the same to Kubernetes: both leave the field unset.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.node.value {
            Yaml::Null => visitor
                .visit_none()
                .map_err(|error: DecodeError| error.at(&self.path, self.node)),
            _ => visitor.visit_some(self),
        }
    }

    /// Derived structs also accept a sequence of their fields in order; a manifest must not.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.node.value {
            Yaml::Seq(_) => Err(self.refuse(de::Unexpected::Seq, "a mapping")),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match name {
            // `Untranslated<T>`: noted, then read as the value itself.
            UNTRANSLATED => {
                self.record.untranslated(&self.path, self.node.pos);
                visitor.visit_newtype_struct(self)
            }
            _ => visitor.visit_newtype_struct(self),
        }
    }

    /// Proto enums are written by their names.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        use de::IntoDeserializer;
        match &self.node.value {
            Yaml::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|error: DecodeError| error.at(&self.path, self.node)),
            _ => Err(self.refuse(
                de::Unexpected::Other(&self.node.text()),
                "one of the enum's names",
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct identifier
    }
}

/// A mapping key: always handed to the visitor as text, as Kubernetes' JSON has it.
struct KeyDe<'n> {
    node: &'n Node,
    path: FieldPath,
}

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor
            .visit_str(&self.node.text())
            .map_err(|error: DecodeError| error.at(&self.path, self.node))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

struct SeqDe<'n, 'p, 'r> {
    items: std::iter::Enumerate<std::slice::Iter<'n, Node>>,
    path: &'p FieldPath,
    record: &'r Record,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, '_, '_> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.items.next() {
            Some((index, node)) => {
                let path = self.path.index(index);
                seed.deserialize(NodeDe {
                    node,
                    path: path.clone(),
                    record: self.record,
                })
                .map(Some)
                .map_err(|error| error.at(&path, node))
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'n, 'p, 'r> {
    entries: std::slice::Iter<'n, (Node, Node)>,
    path: &'p FieldPath,
    /// The value of the entry whose key was just read.
    value: Option<(&'n Node, FieldPath)>,
    record: &'r Record,
    /// A struct's fields (null values skipped) rather than a map's entries.
    fields: bool,
}

impl<'de> MapAccess<'de> for MapDe<'_, '_, '_> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        // A null value is an unset field, as Kubernetes has it; in a map it is a value.
        let fields = self.fields;
        let Some((key, value)) = self
            .entries
            .find(|(_, v)| !fields || !matches!(v.value, Yaml::Null))
        else {
            return Ok(None);
        };
        let path = self.path.key(&key.text());
        let key = seed.deserialize(KeyDe {
            node: key,
            path: path.clone(),
        })?;
        self.value = Some((value, path));
        Ok(Some(key))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        // serde only asks for a value right after its key; anything else is a serde bug.
        let Some((node, path)) = self.value.take() else {
            return Err(de::Error::custom("a map value requested before its key"));
        };
        seed.deserialize(NodeDe {
            node,
            path: path.clone(),
            record: self.record,
        })
        // A value's own type (a duration, say) may refuse it after the node has handed it over.
        .map_err(|error| error.at(&path, node))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A field of the Istio API that the builtin control plane does not translate: read like the
/// value itself, and noted where it is set, so that the builtin control plane can refuse it by
/// name while every other backend takes it as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Untranslated<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Untranslated<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UntranslatedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for UntranslatedVisitor<T> {
            type Value = Untranslated<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Untranslated<T>, D::Error> {
                T::deserialize(d).map(Untranslated)
            }
        }
        deserializer
            .deserialize_newtype_struct(UNTRANSLATED, UntranslatedVisitor(std::marker::PhantomData))
    }
}
