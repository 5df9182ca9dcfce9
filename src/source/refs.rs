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
    /// The reference file was handed to the sink of
    /// [`stream_refs`](ReferenceSource::stream_refs) as it arrived, with its validator.
    Streamed {
        /// Its `ETag`, for revalidation.
        etag: Option<String>,
    },
    /// The reference file, with its validator when the source gave one.
    Body {
        /// The file's bytes (JSON).
        bytes: Vec<u8>,
        /// Its `ETag`, for revalidation.
        etag: Option<String>,
    },
}

/// Where a streamed reference file's pieces go, in order; an error stops the read.
pub type RefsSink<'a> = dyn FnMut(&[u8]) -> Result<(), crate::error::Error> + 'a;

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

    /// As [`fetch_refs`](Self::fetch_refs), but the body is handed to `sink` piece by piece
    /// as it arrives, never held whole, and the answer is [`RefsFetch::Streamed`] instead of
    /// [`RefsFetch::Body`]. A `sink` error stops the read and is returned as it is.
    ///
    /// Contract: as `fetch_refs`; the pieces, concatenated, are the file. The default reads
    /// the file whole first (for sources whose files are in memory anyway).
    async fn stream_refs(
        &self,
        location: &crate::source::refs::RefsLocation,
        if_none_match: Option<&str>,
        sink: &mut RefsSink<'_>,
    ) -> Result<RefsFetch, crate::error::Error> {
        match self.fetch_refs(location, if_none_match).await? {
            RefsFetch::Body { bytes, etag } => {
                sink(&bytes)?;
                Ok(RefsFetch::Streamed { etag })
            }
            other => Ok(other),
        }
    }
}
