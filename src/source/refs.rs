//! Where reference files come from: their location, the fetch trait and its answers.

/// Where a dataset's reference file lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefsLocation {
    /// An `http(s)://` URL.
    Url(String),
    /// A key in the chunk bucket (`r2://path/refs.json` in the configuration).
    Bucket(String),
}

/// What a reference source returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefsFetch {
    /// The validator still matches: keep the references already loaded.
    NotModified,
    /// The source answered a redirect to `location` (not followed: the caller checks it).
    Redirect {
        /// The `Location` header, as sent.
        location: String,
    },
    /// The reference file, with its validator when the source gave one.
    Body {
        /// The file's bytes (JSON).
        bytes: Vec<u8>,
        /// Its `ETag`, for revalidation.
        etag: Option<String>,
    },
}

/// Where reference files come from (an HTTP URL, or a key in the bucket).
#[allow(async_fn_in_trait)]
pub trait ReferenceSource {
    /// Fetches the reference file at `location`, conditionally when `if_none_match` is given.
    ///
    /// Contract: [`RefsFetch::NotModified`] only when `if_none_match` was given and matches;
    /// a redirect is returned as [`RefsFetch::Redirect`], never followed;
    /// `Err` is [`Error::Upstream`](crate::error::Error::Upstream) (unreachable, non-success status)
    /// or [`Error::NotFound`](crate::error::Error::NotFound) (no such object in the bucket).
    async fn fetch_refs(
        &self,
        location: &crate::source::refs::RefsLocation,
        if_none_match: Option<&str>,
    ) -> Result<RefsFetch, crate::error::Error>;
}
