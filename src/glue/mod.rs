//! The Workers entry points (wasm32 only): the sole user of the `worker` crate.
//!
//! `fetch` builds the real backends from `Env`, keeps the per-isolate state (dataset registry,
//! single flight), hands the request to `service::handle`, converts the answer, puts it in the
//! edge cache (Cache API) when the dataset has the edge tier on, and runs write-backs (and the
//! evictions they trigger) in `ctx.wait_until`. `edge_tier` tells the entry module which
//! requests the edge cache may answer. `scheduled` (the cron trigger) runs
//! `maintenance::scheduled_sweep`.

mod convert;
mod host;
mod http_origin;
mod r2_store;
mod s3_fetch;
mod store;
mod test_routes;
mod timeout;
mod upstash_fetch;

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsCast as _;
use wasm_bindgen_futures::JsFuture;
use worker::{event, Context, Env, Request, ScheduleContext, ScheduledEvent};

use crate::cache::maintenance::{scheduled_sweep, EvictionScope};
use crate::cache::validators::FileChecks;
use crate::cache::{run_write_back, CacheBackends, Flights, WriteBack};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::http::admin::{authorize, MAX_ADMIN_BODY_BYTES};
use crate::http::context::{Backends, RequestParts};
use crate::http::health::HealthCache;
use crate::http::response::error_response;
use crate::http::route::{is_admin_path, route, Route};
use crate::http::routes::MAX_ROUTE_BODY_BYTES;
use crate::http::service::{finish, handle};
use crate::index::circuit::{Circuit, CircuitTransport};
use crate::index::upstash::UpstashIndex;
use crate::keys::CacheKeys;
use crate::platform::Platform;
use crate::source::datasets::DatasetRegistry;

pub use convert::to_worker_response;
use convert::to_worker_response_with;
use futures::channel::mpsc::Receiver;
use http_origin::{HttpOrigin, WorkerRefsSource};
use store::WorkerStore;
use upstash_fetch::FetchTransport;

thread_local! {
    /// Configuration is fixed for an isolate's life: parse and validate `DATASETS` once.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
    /// The dataset registry lives as long as the isolate, so references load once per isolate.
    static REGISTRY: RefCell<Option<Rc<DatasetRegistry>>> = const { RefCell::new(None) };
    /// Origin fetches in flight in this isolate, shared by concurrent misses.
    static FLIGHTS: Flights = Flights::with_holder(&format!("isolate-{}", nonce()));
    /// When this isolate last checked each source file's validator.
    static FILE_CHECKS: FileChecks = FileChecks::default();
    /// The isolate's circuit breaker in front of the index.
    static CIRCUIT: Rc<Circuit> = Rc::default();
    /// The isolate's last health report (probes are rate limited per isolate).
    static HEALTH: Rc<HealthCache> = Rc::default();
    /// The cache backends, fixed for the isolate's life like its configuration (built by the
    /// first request), with the isolate's lease holder id.
    static BACKENDS: RefCell<Option<Rc<WorkerBackends>>> = const { RefCell::new(None) };
}

/// Wall-clock time from the Workers runtime (`Date.now()`; frozen during CPU work, by design).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerClock;

impl Clock for WorkerClock {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fn now_ms(&self) -> u64 {
        // ms since the epoch: whole, positive and far below 2^53.
        js_sys::Date::now() as u64
    }
    async fn sleep(&self, ms: u64) {
        worker::Delay::from(std::time::Duration::from_millis(ms)).await;
    }
}

/// The Workers platform: the index over Fetch behind the isolate's circuit, the chunk store
/// `CHUNK_STORE` names, origins over Fetch, `Date.now()`.
struct Workers;

impl Platform for Workers {
    type Index = WorkerIndex;
    type Store = WorkerStore;
    type Origin = HttpOrigin;
    type Clock = WorkerClock;
    type Refs = WorkerRefsSource;
}

type WorkerBackends = CacheBackends<Workers>;

/// Unique enough for probe keys, lease holders and claim tokens: the isolate's random digits
/// (`Math.random()`, drawn once) and a count of the isolate's requests.
fn nonce() -> String {
    thread_local! {
        static ISOLATE: String = js_sys::Math::random().to_string().replace("0.", "");
        static COUNT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let count = COUNT.with(|c| {
        c.set(c.get().wrapping_add(1));
        c.get()
    });
    ISOLATE.with(|isolate| format!("{isolate}-{count}"))
}

/// The headers the handler reads, in this order (one crossing: `host::request_headers`).
const READ_HEADERS: [&str; 6] = [
    "range",
    "if-none-match",
    "authorization",
    "cookie",
    "content-type",
    "if-range",
];

/// The fetch handler takes the runtime's request as it is (`web_sys`): `worker::Request` would
/// read its `cf` object and copy its URL on every request; only the test route and requests
/// with a body (admin writes, routes passed through) are wrapped, when they are read.
#[event(fetch)]
async fn fetch(raw: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    let (method, url) = host::request_target(&raw);
    let (path, query) = crate::http::route::path_and_query(&url);
    let config = read_config(&env);
    // The edge tier's lookup was the entry module's (`edge_tier`); its put is this handler's.
    let edge_ttl = config
        .as_ref()
        .ok()
        .and_then(|config| edge_ttl_seconds(&method, path, &registry(config)));
    let mut headers = host::request_headers(&raw, &READ_HEADERS).into_iter();
    let mut header = || headers.next().flatten();
    let (range, if_none_match, authorization) = (header(), header(), header());
    let (cookie, content_type, if_range) = (header(), header(), header());
    let nonce = nonce();
    let mut raw = Some(raw);
    // Test stacks only (ZEC_TEST_ROUTES=1, admin token): anything else goes on as usual.
    if test_routes::is_test_path(path) {
        if let Some(req) = raw.take() {
            let req = Request::from(req);
            if let Some(answer) = test_routes::answer(&req, &env, &config).await {
                return answer.map(Into::into);
            }
        }
    }
    let admin_token = config.as_ref().ok().and_then(|c| c.admin_token.as_deref());
    let body = match request_body(
        &mut raw,
        &method,
        path,
        authorization.as_deref(),
        admin_token,
    )
    .await
    {
        Ok(body) => body,
        Err(error) => return error_answer(&method, &error),
    };
    let parts = RequestParts {
        method: &method,
        path,
        query,
        body: &body,
        authorization: authorization.as_deref(),
        cookie: cookie.as_deref(),
        content_type: content_type.as_deref(),
        nonce: &nonce,
        range: range.as_deref(),
        if_none_match: if_none_match.as_deref(),
        if_range: if_range.as_deref(),
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            worker::console_error!("{error}");
            return to_worker_response(finish(&parts, error_response(&error)));
        }
    };
    let registry = registry(&config);
    let (response, write_backs) = match serve(&parts, &env, &config, &registry).await {
        Ok(done) => done,
        Err(error) => {
            worker::console_error!("{error}");
            return to_worker_response(finish(&parts, error_response(&error)));
        }
    };
    if response.status >= 500 {
        worker::console_error!(
            "{method} {path} -> {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    // A body made piece by piece leaves write-backs while it is sent: they join the others.
    let (later, pieces_later) = if response.pieces.is_some() {
        let (sender, receiver) = futures::channel::mpsc::channel(PIECES_QUEUE);
        (Some(sender), Some(receiver))
    } else {
        (None, None)
    };
    let js = to_worker_response_with(response, later)?;
    if let (Some(_), 200, None) = (edge_ttl, js.status(), &range) {
        edge_put(&ctx, &url, &js)?;
    }
    if !write_backs.is_empty() || pieces_later.is_some() {
        let later = (write_backs, pieces_later);
        run_after_response(&ctx, &env, config, Rc::clone(&registry), nonce, later)?;
    }
    Ok(js)
}

/// How many windows' write-backs of a body made piece by piece may wait, and run at once.
const PIECES_QUEUE: usize = 4;

/// Runs the write-backs in `ctx.wait_until`, after the response; then rereads the run-time
/// datasets if a lookup that finished there saw them change.
fn run_after_response(
    ctx: &Context,
    env: &Env,
    config: Rc<Config>,
    registry: Rc<DatasetRegistry>,
    nonce: String,
    (write_backs, pieces): (Vec<WriteBack>, Option<Receiver<Vec<WriteBack>>>),
) -> worker::Result<()> {
    let cache = cache_backends(env, &config).map_err(|e| e.to_string())?;
    ctx.wait_until(async move {
        let datasets = registry.ids();
        let scope = EvictionScope {
            datasets: &datasets,
            now_ms: WorkerClock.now_ms(),
            token: &nonce,
            total_evictions: config.total_evictions_per_run as usize,
        };
        let (index, store, origin) = (&cache.index, &cache.store, &cache.origin);
        for write_back in write_backs {
            if let Err(e) =
                run_write_back(write_back, index, store, origin, &WorkerClock, &scope).await
            {
                worker::console_warn!("write-back: {e}");
            }
        }
        // The pieces' write-backs, as the body is sent (the channel closes with the body): a
        // few windows at once, each window's in order.
        if let Some(pieces) = pieces {
            use futures::StreamExt as _;
            let scope = &scope;
            pieces
                .for_each_concurrent(PIECES_QUEUE, |batch| async move {
                    for write_back in batch {
                        if let Err(e) =
                            run_write_back(write_back, index, store, origin, &WorkerClock, scope)
                                .await
                        {
                            worker::console_warn!("write-back: {e}");
                        }
                    }
                })
                .await;
        }
        registry
            .refresh_if_seen_changed(index, WorkerClock.now_ms())
            .await;
    });
    Ok(())
}

/// The cron trigger (`[triggers] crons` in wrangler.toml): the sweep over every dataset.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let config = match read_config(&env) {
        Ok(config) => config,
        Err(error) => {
            worker::console_error!("scheduled sweep: {error}");
            return;
        }
    };
    let store = match store_from(&env, &config) {
        Ok(store) => store,
        Err(error) => {
            worker::console_error!("scheduled sweep: {error}");
            return;
        }
    };
    let cache: WorkerBackends = CacheBackends {
        index: index_from(&config),
        store,
        origin: HttpOrigin::new(config.origin_timeout_ms),
        clock: WorkerClock,
        keys: CacheKeys::new(&config.key_prefix),
        late: crate::cache::settle::LateLookups::default(),
    };
    let settings = config.settings();
    let token = format!("cron-{}", nonce());
    let report = scheduled_sweep(&cache, &registry(&config), settings, &token).await;
    let summary = serde_json::to_string(&report).unwrap_or_default();
    if report.failures.is_empty() {
        worker::console_log!("sweep ({}): {summary}", event.cron());
    } else {
        worker::console_error!("sweep ({}): {summary}", event.cron());
    }
}

/// The answer for an error found before the request could be handled.
fn error_answer(method: &str, error: &Error) -> worker::Result<web_sys::Response> {
    let parts = RequestParts {
        method,
        path: "",
        query: "",
        body: &[],
        authorization: None,
        cookie: None,
        content_type: None,
        nonce: "",
        range: None,
        if_none_match: None,
        if_range: None,
    };
    to_worker_response(finish(&parts, error_response(error)))
}

/// The request body worth reading: an admin call's, only once its token checks out (so an
/// anonymous caller cannot make the worker read anything), and a passed-through route's; never
/// more than the limit + 1 bytes (an admin body over it is refused by the admin API).
///
/// # Errors
/// [`Error::BadRequest`] for a passed-through body over its limit.
async fn request_body(
    raw: &mut Option<web_sys::Request>,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    admin_token: Option<&str>,
) -> Result<Vec<u8>, Error> {
    let writes = matches!(method, "POST" | "PUT");
    if is_admin_path(path) && writes {
        return Ok(match authorize(authorization, admin_token) {
            Ok(()) => read_bounded(raw.take(), MAX_ADMIN_BODY_BYTES + 1).await,
            Err(_) => Vec::new(),
        });
    }
    if path.starts_with("/routes/") && !matches!(method, "GET" | "HEAD") {
        let body = read_bounded(raw.take(), MAX_ROUTE_BODY_BYTES + 1).await;
        if body.len() > MAX_ROUTE_BODY_BYTES {
            return Err(Error::BadRequest(format!(
                "a request body passed through is at most {MAX_ROUTE_BODY_BYTES} bytes"
            )));
        }
        return Ok(body);
    }
    Ok(Vec::new())
}

/// At most `most` bytes of the request body (a failed read is an empty body: the admin API then
/// answers 400 for it).
async fn read_bounded(raw: Option<web_sys::Request>, most: usize) -> Vec<u8> {
    use futures::StreamExt as _;
    let Some(raw) = raw else {
        return Vec::new();
    };
    let Ok(mut stream) = Request::from(raw).stream() else {
        return Vec::new();
    };
    let mut body = Vec::new();
    while let Some(Ok(piece)) = stream.next().await {
        let room = most.saturating_sub(body.len());
        body.extend_from_slice(&piece[..piece.len().min(room)]);
        if body.len() >= most {
            break;
        }
    }
    body
}

/// The isolate's dataset registry (created on first use).
fn registry(config: &Config) -> Rc<DatasetRegistry> {
    REGISTRY.with(|cell| {
        Rc::clone(cell.borrow_mut().get_or_insert_with(|| {
            Rc::new(
                DatasetRegistry::new(
                    config.datasets.clone(),
                    config.refs_budget_bytes,
                    u64::from(config.refs_revalidate_seconds) * 1000,
                )
                .with_runtime_refresh_ms(u64::from(config.datasets_refresh_seconds) * 1000)
                // A first load may take the download's time limit plus parsing.
                .with_load_deadline_ms(u64::from(config.refs_timeout_ms) + 10_000),
            )
        }))
    })
}

/// Whether the edge cache may answer a request (`method`, the runtime's serialised `url`): a
/// `GET` of a Zarr key of a dataset with the edge tier on ([`edge_ttl_seconds`]). The entry
/// module (`src/glue/entry.mjs`) asks before it calls the fetch handler and answers an edge hit
/// itself: one synchronous call into wasm, where looking from the handler cost a task and two
/// promise turns of the futures executor, half of an edge hit's own CPU (bench/README.md). The
/// fetch handler never looks in the edge cache; it puts full answers there ([`edge_put`]).
#[wasm_bindgen::prelude::wasm_bindgen(js_name = edgeTier)]
pub fn edge_tier(method: &str, url: &str, env: &wasm_bindgen::JsValue) -> bool {
    let (path, _) = crate::http::route::path_and_query(url);
    read_config(env.unchecked_ref::<Env>())
        .is_ok_and(|config| edge_ttl_seconds(method, path, &registry(&config)).is_some())
}

/// The dataset's edge TTL when this request may use the edge cache (a `GET` of a Zarr key of a
/// dataset with the edge tier on).
fn edge_ttl_seconds(method: &str, path: &str, registry: &DatasetRegistry) -> Option<u64> {
    if method != "GET" {
        return None;
    }
    let Ok(Route::ZarrKey { dataset, .. }) = route(method, path) else {
        return None;
    };
    registry
        .config(&dataset)
        .ok()
        .map(|d| d.edge_ttl_seconds)
        .filter(|ttl| *ttl > 0)
}

/// The edge cache (the data centre's default Cache API cache).
fn edge_cache() -> Option<web_sys::Cache> {
    use worker::worker_sys::ext::CacheStorageExt as _;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Some(global.caches().ok()?.default())
}

/// Puts a copy of the full answer in the edge cache after the response, marked `X-Cache: EDGE`
/// (so a hit is answered as stored, without copying its headers), without the first answer's
/// `Server-Timing`.
fn edge_put(ctx: &Context, key: &str, answer: &web_sys::Response) -> worker::Result<()> {
    let copy = answer.clone()?;
    copy.headers().set("x-cache", "EDGE")?;
    copy.headers().delete("server-timing")?;
    let Some(cache) = edge_cache() else {
        return Ok(());
    };
    let key = key.to_owned();
    ctx.wait_until(async move {
        if let Err(e) = JsFuture::from(cache.put_with_str(&key, &copy)).await {
            worker::console_warn!("edge cache put {key}: {e:?}");
        }
    });
    Ok(())
}

fn read_config(env: &Env) -> Result<Rc<Config>, Error> {
    if let Some(config) = CONFIG.with(|cell| cell.borrow().clone()) {
        return Ok(config);
    }
    let config = Rc::new(Config::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    })?);
    CONFIG.with(|cell| *cell.borrow_mut() = Some(Rc::clone(&config)));
    Ok(config)
}

/// The index as this isolate reaches it: the Fetch transport behind the isolate's circuit.
type WorkerIndex = UpstashIndex<CircuitTransport<FetchTransport, WorkerClock>>;

fn index_from(config: &Config) -> WorkerIndex {
    let transport = FetchTransport::new(&config.upstash_url, config.index_timeout_ms);
    UpstashIndex::new(
        CircuitTransport::new(transport, CIRCUIT.with(Rc::clone), WorkerClock),
        config.upstash_token.clone(),
        CacheKeys::new(&config.key_prefix),
    )
}

fn store_from(env: &Env, config: &Config) -> Result<WorkerStore, Error> {
    WorkerStore::from_env(env, config)
}

/// The isolate's cache backends (see `BACKENDS`).
fn cache_backends(env: &Env, config: &Config) -> Result<Rc<WorkerBackends>, Error> {
    if let Some(cache) = BACKENDS.with(|cell| cell.borrow().clone()) {
        return Ok(cache);
    }
    let cache = Rc::new(CacheBackends {
        index: index_from(config),
        store: store_from(env, config)?,
        origin: HttpOrigin::new(config.origin_timeout_ms),
        clock: WorkerClock,
        keys: CacheKeys::new(&config.key_prefix),
        late: crate::cache::settle::LateLookups::default(),
    });
    BACKENDS.with(|cell| *cell.borrow_mut() = Some(Rc::clone(&cache)));
    Ok(cache)
}

async fn serve(
    parts: &RequestParts<'_>,
    env: &Env,
    config: &Config,
    registry: &DatasetRegistry,
) -> Result<
    (
        crate::http::response::HttpResponse<store::WorkerBody>,
        Vec<crate::cache::WriteBack>,
    ),
    Error,
> {
    let flights = FLIGHTS.with(Flights::clone);
    let file_checks = FILE_CHECKS.with(FileChecks::clone);
    let settings = config.settings();
    let health = HEALTH.with(Rc::clone);
    let cache = cache_backends(env, config)?;
    let refs_source = WorkerRefsSource {
        store: cache.store.clone(),
        max_bytes: config.refs_max_bytes,
        timeout_ms: config.refs_timeout_ms,
    };
    let backends = Backends {
        cache: &cache,
        refs_source: &refs_source,
        datasets: registry,
        flights: &flights,
        admin_token: config.admin_token.as_deref(),
        settings: &settings,
        secrets: &|name| {
            env.secret(name)
                .map(|s| s.to_string())
                .or_else(|_| env.var(name).map(|v| v.to_string()))
                .ok()
        },
        health: &health,
        file_checks: &file_checks,
    };
    Ok(handle(parts, &backends).await)
}
