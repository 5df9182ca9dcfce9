//! The Workers entry point (wasm32 only): the sole user of the `worker` crate.
//!
//! Builds the real backends from `Env`, hands the request to `service::handle`, and converts the
//! answer. Configuration errors answer 500 JSON naming the variable.

mod convert;
mod r2_store;
mod upstash_fetch;

use worker::{event, Context, Env, Request, Response};

use crate::backend::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::index::UpstashIndex;
use crate::response::error_response;
use crate::service::{finish, handle, Backends, RequestParts};

pub use convert::to_worker_response;
use r2_store::R2Store;
use upstash_fetch::FetchTransport;

/// Name of the R2 binding that holds chunk bytes (`[[r2_buckets]] binding` in wrangler.toml).
const CHUNKS_BINDING: &str = "CHUNKS";

/// Wall-clock time from the Workers runtime (`Date.now()`; frozen during CPU work, by design).
struct WorkerClock;

impl Clock for WorkerClock {
    fn now_ms(&self) -> u64 {
        worker::Date::now().as_millis()
    }
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let method = req.method().to_string();
    let url = req.url()?;
    // Random digits of Math.random(): unique enough for per-request probe keys.
    let nonce = js_sys::Math::random().to_string().replace("0.", "");
    let parts = RequestParts {
        method: &method,
        path: url.path(),
        nonce: &nonce,
    };
    let response = match backends_from(&env) {
        Ok((index, store)) => {
            let backends = Backends {
                index: &index,
                store: &store,
                clock: &WorkerClock,
            };
            handle(&parts, &backends).await
        }
        Err(error) => {
            worker::console_error!("{error}");
            finish(&parts, error_response(&error))
        }
    };
    to_worker_response(&response)
}

fn backends_from(env: &Env) -> Result<(UpstashIndex<FetchTransport>, R2Store), Error> {
    let config = Config::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    })?;
    let transport = FetchTransport::new(&config.upstash_url, config.index_timeout_ms);
    let bucket = env
        .bucket(CHUNKS_BINDING)
        .map_err(|e| Error::Internal(format!("R2 binding {CHUNKS_BINDING} is missing: {e}")))?;
    Ok((
        UpstashIndex::new(transport, config.upstash_token),
        R2Store::new(bucket, &config.key_prefix),
    ))
}
