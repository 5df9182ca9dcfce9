//! `/routes/{dataset}/{path}`: the other routes of a dataset's origin (xpublish's EDR, WMS and
//! tile plugins, `OPeNDAP`, `/info`). A `GET` or `HEAD` that a rule of the dataset lists, without
//! credentials or cookies, goes through the cache path under the canonical query (the origin's
//! content type kept with the bytes); anything else passes through uncached. A 5xx from the
//! origin is a 502 and is never cached; a 4xx passes through as it is.

use crate::cache::envelope;
use crate::cache::{read_chunk, ChunkBody, ChunkRequest, WriteBack};
use crate::error::Error;
use crate::http::conditional::{etag, none_match};
use crate::http::context::{origin_auth, route_plan, Backends, RequestParts};
use crate::http::response::HttpResponse;
use crate::http::zarr::{absent_response, cache_headers};
use crate::origin::check::is_redirect;
use crate::origin::url_policy::redact;
use crate::origin::{Origin, OriginError};
use crate::platform::{Body, Platform};
use crate::source::routes::canonical_query;
use crate::store::ChunkStore;

/// The largest request body passed through to an origin (EDR queries by POST are small).
pub const MAX_ROUTE_BODY_BYTES: usize = 1024 * 1024;

/// Answers one route of `dataset`'s origin.
///
/// # Errors
/// [`Error::NotFound`] for a dataset without routes; [`Error::BadRequest`] for an unusable
/// query; what the cache path or the origin fails with.
pub async fn origin_route<P: Platform>(
    request: &RequestParts<'_>,
    dataset: &str,
    path: &str,
    backends: &Backends<'_, P>,
) -> Result<(HttpResponse<Body<P>>, Vec<WriteBack>), Error> {
    let config = backends.datasets.config(dataset)?;
    let routes = config
        .routes
        .as_ref()
        .ok_or_else(|| Error::NotFound(format!("dataset {dataset} passes no routes through")))?;
    let cacheable = matches!(request.method, "GET" | "HEAD")
        && request.authorization.is_none()
        && request.cookie.is_none();
    let Some(rule) = routes.rule_for(path).filter(|_| cacheable) else {
        let url = routes.url_of(path, request.query);
        return Ok((
            pass_through(request, &url, &config.hosts, backends).await?,
            Vec::new(),
        ));
    };
    let query = canonical_query(request.query, rule.sort_query).map_err(Error::BadRequest)?;
    let url = routes.url_of(path, &query);
    // A leading `/` keeps route entries apart from Zarr keys (which never start with one).
    let key = if query.is_empty() {
        format!("/routes/{path}")
    } else {
        format!("/routes/{path}?{query}")
    };
    let plan = route_plan(&config, rule.ttl_seconds, backends);
    let auth = origin_auth(&config, backends)?;
    let chunk_request = ChunkRequest {
        dataset,
        key: &key,
        url: &url,
        hosts: &config.hosts,
        range: None,
        holder: request.nonce,
        auth: auth.as_ref(),
        rules: plan.rules,
        version: plan.version,
        checks: None,
        decode: None,
    };
    let (chunk, write_backs) =
        read_chunk(chunk_request, plan.policy, backends.cache, backends.flights).await?;
    let write_backs: Vec<WriteBack> = write_backs
        .into_iter()
        .map(|w| w.admitted_by(&config.admission))
        .collect();
    if let Some(generation) = chunk.generation {
        backends.datasets.set_generation(dataset, generation);
    }
    if chunk.absent {
        return Ok((absent_response(dataset, &key, chunk.source), write_backs));
    }
    let tag = etag(&chunk.checksum);
    let bytes = match chunk.body {
        ChunkBody::Stored { body, .. } => backends.cache.store.read_body(body).await?,
        ChunkBody::Bytes(bytes) => bytes.to_vec(),
    };
    let Some((content_type, body)) = envelope::unwrap(&bytes) else {
        return Err(Error::Internal(format!(
            "{dataset}/{key}: the cached answer is not an envelope"
        )));
    };
    let headers = cache_headers(&tag, chunk.source, chunk.timing, plan.max_age);
    let response = if none_match(request.if_none_match, &tag) {
        HttpResponse {
            status: 304,
            headers,
            body: Vec::new(),
            stream: None,
            pieces: None,
        }
    } else {
        let mut headers = headers;
        headers.push(("content-type".to_owned(), content_type.to_owned()));
        headers.push(("content-length".to_owned(), body.len().to_string()));
        HttpResponse {
            status: 200,
            headers,
            body: body.to_vec(),
            stream: None,
            pieces: None,
        }
    };
    Ok((response, write_backs))
}

/// Sends the client's request on to the origin, uncached, and its answer back (status, content
/// type, body, a redirect's `Location`); a 5xx is a 502, a timeout a 504.
async fn pass_through<P: Platform>(
    request: &RequestParts<'_>,
    url: &str,
    hosts: &crate::origin::url_policy::HostPolicy,
    backends: &Backends<'_, P>,
) -> Result<HttpResponse<Body<P>>, Error> {
    let target = hosts
        .check_chunk_url(url)
        .map_err(|refusal| Error::Forbidden(format!("route {}: {refusal}", redact(url))))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in [
        ("authorization", request.authorization),
        ("cookie", request.cookie),
        ("content-type", request.content_type),
    ] {
        if let Some(value) = value {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let shown = redact(target.as_str());
    let answer = backends
        .cache
        .origin
        .forward(request.method, target.as_str(), &headers, request.body)
        .await
        .map_err(|e| match e {
            OriginError::Timeout(_) => Error::OriginTimeout(format!("{shown}: {e}")),
            _ => Error::Upstream(format!("{shown}: {e}")),
        })?;
    if answer.status >= 500 {
        return Err(Error::Upstream(format!(
            "{shown} answered HTTP {}",
            answer.status
        )));
    }
    let mut headers = vec![
        ("x-cache".to_owned(), "PASS".to_owned()),
        ("cache-control".to_owned(), "no-store".to_owned()),
    ];
    if let Some(content_type) = answer.content_type {
        headers.push(("content-type".to_owned(), content_type));
    }
    if is_redirect(answer.status) {
        if let Some(location) = answer.location {
            headers.push(("location".to_owned(), location));
        }
    }
    Ok(HttpResponse {
        status: answer.status,
        headers,
        body: answer.body,
        stream: None,
        pieces: None,
    })
}

#[cfg(test)]
mod tests {
    use crate::http::testing::*;

    /// A listed route is cached under its canonical query (another spelling is a HIT), with
    /// the origin's content type; an unlisted one and a POST pass through; a 500 is a 502 and
    /// is not cached; a 4xx passes through as it is.
    #[test]
    fn routes_cache_and_pass_through() {
        let world = routes_world();
        let first = run(&world, "GET", "/routes/xp/edr/position?b=2&a=1");
        assert_eq!(
            first.status,
            200,
            "{}",
            String::from_utf8_lossy(&first.body)
        );
        assert_eq!(first.header("x-cache"), Some("MISS"));
        assert_eq!(first.header("content-type"), Some("application/json"));
        assert_eq!(first.body, br#"{"edr":1}"#);
        let again = run(&world, "GET", "/routes/xp/edr/position?a=1&b=2");
        assert_eq!(again.header("x-cache"), Some("HIT"));
        assert_eq!(again.body, br#"{"edr":1}"#);
        assert_eq!(again.header("content-type"), Some("application/json"));
        let edr_gets = |world: &World| {
            let requests = world.origin.requests.borrow();
            requests.iter().filter(|r| r.0.contains("/edr/")).count()
        };
        assert_eq!(edr_gets(&world), 1, "the second spelling was not fetched");

        let posted = run(&world, "POST", "/routes/xp/edr/position?b=2&a=1");
        assert_eq!(posted.header("x-cache"), Some("PASS"));
        assert_eq!(world.origin.forwarded.borrow().len(), 1);

        let unlisted = run(&world, "GET", "/routes/xp/info");
        assert_eq!(unlisted.header("x-cache"), Some("PASS"));

        for _ in 0..2 {
            let failed = run(&world, "GET", "/routes/xp/edr/boom");
            assert_eq!(failed.status, 502);
        }
        assert_eq!(
            edr_gets(&world),
            4,
            "the POST and both failed GETs (never cached)"
        );
        let refused = run(&world, "GET", "/routes/xp/edr/bad");
        assert_eq!(refused.status, 422);
        assert_eq!(refused.body, b"");
        assert_eq!(
            run(&world, "GET", "/routes/demo/x").status,
            404,
            "no routes"
        );
    }
}
