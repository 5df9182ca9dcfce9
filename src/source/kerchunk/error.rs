//! [`LoadError`]: why a reference set did not load, and where in it the problem is.
//!
//! Every problem is found while loading ([`References::from_json`](super::References::from_json));
//! a loaded reference set never fails a lookup.

use std::fmt;

/// A reference set that could not be loaded: where ([`Place`]) and what ([`Problem`]).
///
/// The dataset is unknown to the parser; the caller names it with [`LoadError::in_dataset`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{place}: {problem}", DatasetPrefix(.dataset.as_deref()))]
pub struct LoadError {
    /// The dataset the references belong to, when the caller added it.
    pub dataset: Option<String>,
    /// Where the problem is.
    pub place: Place,
    /// What is wrong.
    pub problem: Problem,
}

impl LoadError {
    /// A problem at `place`.
    #[must_use]
    pub fn new(place: Place, problem: Problem) -> Self {
        Self {
            dataset: None,
            place,
            problem,
        }
    }

    /// The same error, naming the dataset it happened in.
    #[must_use]
    pub fn in_dataset(mut self, id: impl Into<String>) -> Self {
        self.dataset = Some(id.into());
        self
    }
}

struct DatasetPrefix<'a>(Option<&'a str>);

impl fmt::Display for DatasetPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "dataset {id}: "),
            None => Ok(()),
        }
    }
}

/// Where in a reference set a [`Problem`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The document as a whole (not JSON, not an object, unknown version, too large).
    Document,
    /// The reference with this key (in `refs`, or at the top level in version 0).
    Ref(String),
    /// The template with this name (`templates` in version 1).
    Template(String),
    /// A field of the `gen` entry at this index: `key`, `url`, `offset`, `length`,
    /// `dimensions` or `dimensions.NAME`, or empty for the entry as a whole.
    Gen {
        /// The entry's index in the `gen` list.
        index: usize,
        /// The field.
        field: String,
    },
    /// The [`LoadOptions`](super::LoadOptions) (base URL, S3 endpoint).
    Options,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Document => f.write_str("references"),
            Self::Ref(key) => write!(f, "key {key:?}"),
            Self::Template(name) => write!(f, "template {name:?}"),
            Self::Gen { index, field } if field.is_empty() => write!(f, "gen[{index}]"),
            Self::Gen { index, field } => write!(f, "gen[{index}].{field}"),
            Self::Options => f.write_str("load options"),
        }
    }
}

/// What is wrong with a reference set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The bytes are not JSON (`serde_json`'s message, with line and column).
    #[error("not valid JSON: {0}")]
    Json(String),
    /// The `version` member is neither absent (version 0) nor 1.
    #[error("unknown reference spec version {0} (only 1, or no version for version 0)")]
    UnknownVersion(String),
    /// A value has the wrong JSON type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the spec allows here.
        expected: &'static str,
        /// What the document has (a JSON type, or a short excerpt).
        found: String,
    },
    /// A `[url, offset, length]` list is malformed: wrong length, negative or non-integer
    /// numbers, or an `offset + length` past 2⁶⁴.
    #[error("bad byte range: {0}")]
    Range(String),
    /// A `base64:` value does not decode.
    #[error("bad base64 data: {0}")]
    Base64(String),
    /// A template (`{{ … }}`) does not parse, uses jinja this loader does not support, names
    /// something undefined, or may fail when evaluated (division by zero, overflow).
    #[error("bad template: {0}")]
    Template(String),
    /// A `gen` entry is malformed or its key template cannot be inverted.
    #[error("bad gen entry: {0}")]
    Gen(String),
    /// A URL cannot be turned into an `http(s)://` URL.
    #[error("unusable URL {url:?}: {reason}")]
    Url {
        /// The URL as written (templates already rendered).
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The set exceeds an internal limit (4 GiB of records, 2³⁰ distinct URLs).
    #[error("too large: {0}")]
    TooLarge(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message names the dataset (once added), the place and the problem.
    #[test]
    fn display_names_dataset_place_and_problem() {
        let e = LoadError::new(
            Place::Ref("x/0".into()),
            Problem::Range("offset is negative (-1)".into()),
        );
        assert_eq!(
            e.to_string(),
            r#"key "x/0": bad byte range: offset is negative (-1)"#
        );
        assert_eq!(
            e.in_dataset("era5").to_string(),
            r#"dataset era5: key "x/0": bad byte range: offset is negative (-1)"#
        );
        let g = LoadError::new(
            Place::Gen {
                index: 2,
                field: "key".into(),
            },
            Problem::Gen("x".into()),
        );
        assert_eq!(g.to_string(), "gen[2].key: bad gen entry: x");
    }
}
