//! Field paths (`spec.ports[0].protocol`), and finding them in a tree.

use std::fmt;

use super::node::{Node, Pos, Yaml};

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct FieldPath(Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub(crate) fn key(&self, key: &str) -> FieldPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    /// A path as [`FieldPath`]'s `Display` writes it (`spec.ports[0].protocol`); keys with
    /// other characters than letters, digits, `_` and `-` are not read back.
    pub(crate) fn parse(text: &str) -> FieldPath {
        let mut path = FieldPath::default();
        for part in text.split('.') {
            let (key, indices) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !key.is_empty() {
                path = path.key(key);
            }
            for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
                if let Ok(index) = index.parse() {
                    path = path.index(index);
                }
            }
        }
        path
    }

    pub(crate) fn index(&self, index: usize) -> FieldPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                // Label keys such as `app.kubernetes.io/name` would make a dotted path ambiguous.
                Segment::Key(key)
                    if key.is_empty()
                        || !key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    write!(f, "[{key:?}]")?
                }
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Where a path points: its key and its value. A path that leaves the tree early (a missing
/// field) stops at the deepest node that exists: the key of the mapping the field belongs in.
pub(crate) struct Located {
    pub key: Pos,
    pub value: Pos,
}

pub(crate) fn locate(root: &Node, path: &FieldPath) -> Located {
    let mut node = root;
    let mut key = root.pos;
    for segment in &path.0 {
        let next = match (segment, &node.value) {
            (Segment::Key(name), Yaml::Map(_)) => node.get(name),
            (Segment::Index(index), Yaml::Seq(items)) => items.get(*index).map(|item| (item, item)),
            _ => None,
        };
        let Some((next_key, next_value)) = next else {
            // A missing field belongs where its parent is written.
            return Located { key, value: key };
        };
        key = next_key.pos;
        node = next_value;
    }
    Located {
        key,
        value: node.pos,
    }
}

/// The node at `path`, if the tree has it.
pub(crate) fn find<'n>(root: &'n Node, path: &FieldPath) -> Option<&'n Node> {
    let mut node = root;
    for segment in &path.0 {
        node = match (segment, &node.value) {
            (Segment::Key(name), Yaml::Map(_)) => node.get(name)?.1,
            (Segment::Index(index), Yaml::Seq(items)) => items.get(*index)?,
            _ => return None,
        };
    }
    Some(node)
}

/// The value at `path` as an error message shows it; empty when there is none.
pub(crate) fn value_text(root: &Node, path: &FieldPath) -> String {
    find(root, path).map(Node::text).unwrap_or_default()
}
