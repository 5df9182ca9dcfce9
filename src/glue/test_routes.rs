//! Test-only routes: `POST /__test/store-contract` runs the chunk store's contract suite
//! (`store::contract`) against this deployment's real store (the one [`store_from`] builds, as
//! for every request), under a prefix of its own below the deployment's key prefix, and answers
//! the report as JSON: `200` when every case passed, `500` otherwise.
//!
//! Answered only when the worker variable `ZEC_TEST_ROUTES` is `"1"` (the test stack of
//! `scripts/test` sets it, nothing else does) and the request carries the admin token; any
//! other request, this path included, goes on to the normal routing (a `404`), so a deployment
//! without the variable does not even show that the route exists.

use std::rc::Rc;

use worker::{Env, Request, Response};

use super::{nonce, store_from, WorkerClock};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::Error;
use crate::http::admin::authorize;
use crate::keys::CacheKeys;

/// The worker variable that turns the test routes on (`"1"`).
const ENABLE_VAR: &str = "ZEC_TEST_ROUTES";
/// The route running the chunk store's contract suite.
const STORE_CONTRACT_PATH: &str = "/__test/store-contract";

/// Whether a request may be answered by the store-contract route: `POST` to its path, the
/// routes turned on, and the admin token presented.
fn admitted(
    method: &str,
    path: &str,
    enabled: Option<&str>,
    authorization: Option<&str>,
    admin_token: Option<&str>,
) -> bool {
    method == "POST"
        && path == STORE_CONTRACT_PATH
        && enabled == Some("1")
        && authorize(authorization, admin_token).is_ok()
}

/// The test route's answer to `req`, or `None` when it is not one (then the request goes on as
/// usual).
/// Whether `path` is the test route's (the only request [`answer`] may take).
pub fn is_test_path(path: &str) -> bool {
    path == STORE_CONTRACT_PATH
}

pub async fn answer(
    req: &Request,
    env: &Env,
    config: &Result<Rc<Config>, Error>,
) -> Option<worker::Result<Response>> {
    let url = req.url().ok()?;
    if url.path() != STORE_CONTRACT_PATH {
        return None;
    }
    let config = config.as_ref().ok()?;
    let enabled = env
        .secret(ENABLE_VAR)
        .map(|s| s.to_string())
        .or_else(|_| env.var(ENABLE_VAR).map(|v| v.to_string()))
        .ok();
    let authorization = req.headers().get("authorization").ok().flatten();
    if !admitted(
        req.method().as_ref(),
        url.path(),
        enabled.as_deref(),
        authorization.as_deref(),
        config.admin_token.as_deref(),
    ) {
        return None;
    }
    Some(store_contract(env, config, &nonce()).await)
}

/// Runs the store suite against the real store and answers its report.
async fn store_contract(env: &Env, config: &Config, nonce: &str) -> worker::Result<Response> {
    let store = match store_from(env, config) {
        Ok(store) => store,
        Err(error) => return Response::error(format!("store contract: {error}"), 500),
    };
    let run = format!("{}-{nonce}", WorkerClock.now_ms());
    let prefix = CacheKeys::new(&config.key_prefix).contract_prefix(&run);
    let report = crate::store::contract::run(&store, &WorkerClock, &prefix).await;
    let failed = report.failures().len();
    let body = serde_json::json!({
        "suite": "store",
        "prefix": prefix,
        "passed": report.cases.len() - failed,
        "failed": failed,
        "cases": report.cases,
    });
    let status = if report.all_passed() { 200 } else { 500 };
    if status != 200 {
        worker::console_error!("store contract: {}", report.failure_text());
    }
    Ok(Response::from_json(&body)?.with_status(status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const TOKEN: &str = "a-test-admin-token-0123";

    /// Only a `POST` to the path, with the routes on and the admin token, is answered.
    #[wasm_bindgen_test]
    fn only_enabled_authorized_posts_are_admitted() {
        let bearer = format!("Bearer {TOKEN}");
        let ok = Some(bearer.as_str());
        assert!(admitted(
            "POST",
            STORE_CONTRACT_PATH,
            Some("1"),
            ok,
            Some(TOKEN)
        ));
        for (method, path, enabled, authorization, token) in [
            ("POST", STORE_CONTRACT_PATH, None, ok, Some(TOKEN)),
            ("POST", STORE_CONTRACT_PATH, Some("0"), ok, Some(TOKEN)),
            ("POST", STORE_CONTRACT_PATH, Some("true"), ok, Some(TOKEN)),
            ("POST", STORE_CONTRACT_PATH, Some("1"), None, Some(TOKEN)),
            (
                "POST",
                STORE_CONTRACT_PATH,
                Some("1"),
                Some("Bearer wrong-token-000000"),
                Some(TOKEN),
            ),
            ("POST", STORE_CONTRACT_PATH, Some("1"), ok, None),
            ("GET", STORE_CONTRACT_PATH, Some("1"), ok, Some(TOKEN)),
            (
                "POST",
                "/__test/store-contract/",
                Some("1"),
                ok,
                Some(TOKEN),
            ),
            ("POST", "/__test/other", Some("1"), ok, Some(TOKEN)),
        ] {
            assert!(
                !admitted(method, path, enabled, authorization, token),
                "{method} {path} {enabled:?} {authorization:?} {token:?}"
            );
        }
    }
}
