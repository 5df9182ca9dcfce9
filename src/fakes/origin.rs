//! An origin serving files from a map, and a reference source serving reference files.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::{handle, yield_once};

/// An origin serving files from a map, honouring `Range` with 206, counting requests. A gated
/// origin answers only once the gate's sender fires (or is dropped), like a slow network.
#[derive(Default)]
pub struct FakeOriginState {
    files: RefCell<HashMap<String, Vec<u8>>>,
    /// URL → the `Location` of a 302 it answers.
    redirects: HashMap<String, String>,
    gate: Option<futures::future::Shared<futures::channel::oneshot::Receiver<()>>>,
    /// URL → the `ETag` it answers with.
    etags: RefCell<HashMap<String, String>>,
    /// URL → the `Content-Type` it answers with.
    content_types: HashMap<String, String>,
    /// URL → a status it answers (with an empty body) instead of its file.
    statuses: HashMap<String, u16>,
    /// Requests passed through with `forward`: `(method, url, body)`.
    pub forwarded: RefCell<Vec<(String, String, Vec<u8>)>>,
    /// A host that answers 403 to requests without an `authorization` header (a private bucket).
    private_host: Option<String>,
    pub requests: RefCell<Vec<(String, Option<crate::origin::ByteRange>)>>,
    /// The headers each request carried (a signature, for a private origin).
    pub headers: RefCell<Vec<Vec<(String, String)>>>,
}

handle!(
    /// A handle to a [`FakeOriginState`].
    FakeOrigin => FakeOriginState
);

impl FakeOrigin {
    pub fn gated(mut self) -> (Self, futures::channel::oneshot::Sender<()>) {
        use futures::FutureExt as _;
        let (open, gate) = futures::channel::oneshot::channel();
        self.gate = Some(gate.shared());
        (self, open)
    }

    pub fn with_file(mut self, url: &str, bytes: &[u8]) -> Self {
        self.files.get_mut().insert(url.to_owned(), bytes.to_vec());
        self
    }

    /// Replaces (or adds) the file at `url` and its `ETag`, as a rewrite at the origin would.
    pub fn put_file(&self, url: &str, bytes: &[u8], etag: &str) {
        self.files
            .borrow_mut()
            .insert(url.to_owned(), bytes.to_vec());
        self.etags
            .borrow_mut()
            .insert(url.to_owned(), etag.to_owned());
    }

    /// Requests to `host` without an `authorization` header answer 403.
    pub fn with_private_host(mut self, host: &str) -> Self {
        self.private_host = Some(host.to_owned());
        self
    }

    /// `url` answers with this `ETag`.
    pub fn with_etag(mut self, url: &str, etag: &str) -> Self {
        self.etags.get_mut().insert(url.to_owned(), etag.to_owned());
        self
    }

    /// `url` answers with this `Content-Type`.
    pub fn with_content_type(mut self, url: &str, content_type: &str) -> Self {
        self.content_types
            .insert(url.to_owned(), content_type.to_owned());
        self
    }

    /// `url` answers `status` with an empty body.
    pub fn with_status(mut self, url: &str, status: u16) -> Self {
        self.statuses.insert(url.to_owned(), status);
        self
    }

    /// `url` answers `302 Location: location`.
    pub fn with_redirect(mut self, url: &str, location: &str) -> Self {
        self.redirects.insert(url.to_owned(), location.to_owned());
        self
    }
}

impl crate::origin::Origin for FakeOrigin {
    async fn get(
        &self,
        url: &str,
        range: Option<crate::origin::ByteRange>,
        headers: &[(String, String)],
    ) -> Result<crate::origin::OriginResponse, crate::origin::OriginError> {
        self.requests.borrow_mut().push((url.to_owned(), range));
        self.headers.borrow_mut().push(headers.to_vec());
        if let Some(gate) = &self.gate {
            let _ = gate.clone().await;
        }
        let answer = |status, body: Vec<u8>, content_range| crate::origin::OriginResponse {
            status,
            content_range,
            etag: self.etags.borrow().get(url).cloned(),
            last_modified: None,
            location: None,
            content_type: self.content_types.get(url).cloned(),
            body,
        };
        let signed = headers.iter().any(|(name, _)| name == "authorization");
        let host = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next());
        if !signed && host.is_some() && host == self.private_host.as_deref() {
            return Ok(answer(
                403,
                b"<Error><Code>AccessDenied</Code></Error>".to_vec(),
                None,
            ));
        }
        if let Some(location) = self.redirects.get(url) {
            return Ok(crate::origin::OriginResponse {
                location: Some(location.clone()),
                ..answer(302, Vec::new(), None)
            });
        }
        if let Some(status) = self.statuses.get(url) {
            return Ok(answer(*status, Vec::new(), None));
        }
        let files = self.files.borrow();
        let Some(file) = files.get(url) else {
            return Ok(answer(404, b"not found".to_vec(), None));
        };
        let Some(range) = range else {
            return Ok(answer(200, file.clone(), None));
        };
        let start = usize::try_from(range.offset).unwrap();
        let end = (start + usize::try_from(range.length).unwrap()).min(file.len());
        if start >= file.len() {
            return Ok(answer(
                416,
                Vec::new(),
                Some(format!("bytes */{}", file.len())),
            ));
        }
        Ok(answer(
            206,
            file[start..end].to_vec(),
            Some(format!("bytes {start}-{}/{}", end - 1, file.len())),
        ))
    }

    /// Records the request and answers as a plain `GET` of `url` would.
    async fn forward(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<crate::origin::OriginResponse, crate::origin::OriginError> {
        self.forwarded
            .borrow_mut()
            .push((method.to_owned(), url.to_owned(), body.to_vec()));
        self.get(url, None, headers).await
    }
}

/// Reference files from a map keyed by URL (or `r2://key`), with fixed `ETag`s, counting fetches.
#[derive(Default)]
pub struct FakeRefsSource {
    files: RefCell<HashMap<String, (Vec<u8>, String)>>,
    /// Location → where it redirects.
    redirects: RefCell<HashMap<String, String>>,
    pub fetches: Cell<usize>,
    pub not_modified: Cell<usize>,
}

impl FakeRefsSource {
    pub fn with(self, location: &str, json: &str, etag: &str) -> Self {
        self.replace(location, json, etag);
        self
    }
    /// `location` answers a redirect to `target`.
    pub fn with_redirect(self, location: &str, target: &str) -> Self {
        self.redirects
            .borrow_mut()
            .insert(location.to_owned(), target.to_owned());
        self
    }
    pub fn replace(&self, location: &str, json: &str, etag: &str) {
        self.files.borrow_mut().insert(
            location.to_owned(),
            (json.as_bytes().to_vec(), etag.to_owned()),
        );
    }
}

impl crate::source::refs::ReferenceSource for FakeRefsSource {
    async fn fetch_refs(
        &self,
        location: &crate::source::refs::RefsLocation,
        if_none_match: Option<&str>,
    ) -> Result<crate::source::refs::RefsFetch, crate::error::Error> {
        self.fetches.set(self.fetches.get() + 1);
        // Like a real download, let other tasks run meanwhile.
        yield_once().await;
        let name = match location {
            crate::source::refs::RefsLocation::Url(url) => url.clone(),
            crate::source::refs::RefsLocation::Bucket(key) => format!("r2://{key}"),
        };
        if let Some(target) = self.redirects.borrow().get(&name) {
            return Ok(crate::source::refs::RefsFetch::Redirect {
                location: target.clone(),
            });
        }
        let files = self.files.borrow();
        let Some((bytes, etag)) = files.get(&name) else {
            return Err(crate::error::Error::Upstream(format!("{name}: HTTP 404")));
        };
        if if_none_match == Some(etag.as_str()) {
            self.not_modified.set(self.not_modified.get() + 1);
            return Ok(crate::source::refs::RefsFetch::NotModified);
        }
        Ok(crate::source::refs::RefsFetch::Body {
            bytes: bytes.clone(),
            etag: Some(etag.clone()),
        })
    }
}
