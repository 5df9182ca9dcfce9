//! [`UpstashIndex`]: the [`Index`] over any [`UpstashTransport`], built from the sans-IO
//! `upstash` module. The same code runs in the worker (over `worker::Fetch`) and in the native
//! integration tests (over a blocking HTTP client against a real Redis).

use crate::index::entry::{
    f64_to_u64, stats_fields, CacheStats, ClaimSelector, ClaimedKey, IndexEntry, KeyPage,
    LeaseAnswer, LeaseAsk, Lookup, LookupRead, RuntimeDatasets, SourceVersion, StoredBytes,
    VersionProbe,
};
use crate::index::scripts::{self, Script};
use crate::index::transport::UpstashTransport;
use crate::index::{Index, IndexError, DELETING_MS, FILE_VALIDATOR_TTL_MS};
use crate::keys::CacheKeys;
use crate::policy::eviction::{EvictionPolicy, Order};
use crate::policy::listing::KeySort;
use crate::upstash::{decode_batch, decode_single, Batch, Command, HttpCall, ReplyError, Value};

/// A counter reply (`GET` of a number, absent = 0).
fn counter(reply: &Value) -> u64 {
    reply
        .as_int()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// The index, speaking the Upstash REST protocol through `T`.
pub struct UpstashIndex<T> {
    transport: T,
    token: String,
    keys: CacheKeys,
}

/// The token never appears in logs or panics.
impl<T: std::fmt::Debug> std::fmt::Debug for UpstashIndex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstashIndex")
            .field("transport", &self.transport)
            .field("token", &"<redacted>")
            .field("keys", &self.keys)
            .finish()
    }
}

impl<T: UpstashTransport> UpstashIndex<T> {
    /// An index that authenticates with `token`, sends through `transport`, and names its keys
    /// with `keys`.
    pub fn new(transport: T, token: impl Into<String>, keys: CacheKeys) -> Self {
        Self {
            transport,
            token: token.into(),
            keys,
        }
    }

    /// Sends commands as one pipeline (one round trip) and fails if any of them failed.
    async fn pipeline(&self, commands: &[Command]) -> Result<Vec<Value>, IndexError> {
        self.batch(Batch::Pipeline, commands).await
    }

    async fn batch(&self, kind: Batch, commands: &[Command]) -> Result<Vec<Value>, IndexError> {
        let mut answers = self.send_batch(kind, commands).await?;
        // Scripts Redis does not know yet (a new or flushed server): send those commands again
        // as EVAL with the script's text, which also caches it. Only in pipelines, whose
        // commands stand alone; no transaction runs a script.
        let unknown: Vec<usize> = (0..commands.len())
            .filter(|&i| kind == Batch::Pipeline && is_noscript(&answers[i]))
            .collect();
        let retries: Option<Vec<Command>> =
            unknown.iter().map(|&i| with_text(&commands[i])).collect();
        if let Some(retries) = retries.filter(|r| !r.is_empty()) {
            for (i, answer) in unknown
                .into_iter()
                .zip(self.send_batch(kind, &retries).await?)
            {
                answers[i] = answer;
            }
        }
        answers
            .into_iter()
            .map(|answer| answer.map_err(|e| classify(&e)))
            .collect()
    }

    async fn send_batch(
        &self,
        kind: Batch,
        commands: &[Command],
    ) -> Result<Vec<Result<Value, ReplyError>>, IndexError> {
        let call = HttpCall::batch(&self.token, kind, commands);
        let raw = self
            .transport
            .send(&call)
            .await
            .map_err(|e| IndexError::Unavailable(e.to_string()))?;
        decode_batch(raw.status, &raw.body, commands.len()).map_err(|e| classify(&e))
    }

    /// Sends one command and decodes its reply (an `EVALSHA` of a script Redis does not know is
    /// sent again as `EVAL` with the text).
    async fn call(&self, command: &Command) -> Result<Value, IndexError> {
        let answer = self.send_single(command).await?;
        match with_text(command).filter(|_| is_noscript(&answer)) {
            Some(eval) => self.send_single(&eval).await?,
            None => answer,
        }
        .map_err(|e| classify(&e))
    }

    async fn send_single(
        &self,
        command: &Command,
    ) -> Result<Result<Value, ReplyError>, IndexError> {
        let call = HttpCall::single(&self.token, command);
        let raw = self
            .transport
            .send(&call)
            .await
            .map_err(|e| IndexError::Unavailable(e.to_string()))?;
        Ok(decode_single(raw.status, &raw.body))
    }

    /// `EVAL script` over a dataset's keys (see `scripts`): the dataset keys, then
    /// `extra_keys`; the prefixes, then `args`.
    fn dataset_eval(
        &self,
        script: &Script,
        dataset: &str,
        extra_keys: &[String],
        args: impl IntoIterator<Item = String>,
    ) -> Command {
        let mut keys = vec![
            self.keys.stats(dataset),
            self.keys.totals(),
            self.keys.objects(dataset),
        ];
        keys.extend(Order::ALL.iter().map(|o| self.keys.order(dataset, *o)));
        keys.extend_from_slice(extra_keys);
        let mut command = Command::new("EVALSHA").arg(script.sha()).arg(keys.len());
        for key in keys {
            command = command.arg(key);
        }
        command = command
            .arg(self.keys.entry_prefix(dataset))
            .arg(self.keys.holders_prefix())
            .arg(CacheKeys::holder_prefix(dataset));
        for arg in args {
            command = command.arg(arg);
        }
        command
    }

    /// The lookup's `EVALSHA` ([`scripts::LOOKUP`]).
    fn lookup_command(
        &self,
        dataset: &str,
        key: &str,
        now_ms: u64,
        (probe, file): (Option<VersionProbe>, Option<&str>),
        lease: Option<LeaseAsk<'_>>,
    ) -> Command {
        let (generation, stale_after) = match probe {
            Some(p) => (p.generation.to_string(), p.stale_after_ms.to_string()),
            None => (String::new(), "0".to_owned()),
        };
        self.dataset_eval(
            &scripts::LOOKUP,
            dataset,
            &[
                self.keys.entry(dataset, key),
                self.keys.runtime_datasets_version(),
                // Read only when asked for: an empty name costs no bytes on the wire.
                probe.map_or_else(String::new, |_| self.keys.source_version(dataset)),
                file.map_or_else(String::new, |url| self.keys.file_validator(url)),
                lease.map_or_else(String::new, |ask| self.keys.lease(ask.object)),
            ],
            [
                now_ms.to_string(),
                key.to_owned(),
                generation,
                stale_after,
                if file.is_some() { "1" } else { "0" }.to_owned(),
                lease.map_or_else(String::new, |ask| ask.holder.to_owned()),
                lease.map_or_else(String::new, |ask| ask.ttl_ms.max(1).to_string()),
            ],
        )
    }

    /// Writes and accounts an entry ([`scripts::PUT_ENTRY`]); `Some(origin_bytes)` counts
    /// a miss, `None` a hit.
    async fn put_entry(
        &self,
        dataset: &str,
        key: &str,
        entry: &IndexEntry,
        ttl_ms: u64,
        now_ms: u64,
        miss_origin_bytes: Option<u64>,
    ) -> Result<Option<StoredBytes>, IndexError> {
        let fields = entry.fields();
        let args = [
            key.to_owned(),
            ttl_ms.max(1).to_string(),
            now_ms.to_string(),
            if miss_origin_bytes.is_some() {
                "miss"
            } else {
                "hit"
            }
            .to_owned(),
            miss_origin_bytes.unwrap_or(0).to_string(),
            entry.object_key.clone(),
            entry.size.to_string(),
            entry.fetch_ms.to_string(),
            entry.created_ms.to_string(),
            entry.hits.to_string(),
        ]
        .into_iter()
        .chain(fields);
        let reply = self
            .call(&self.dataset_eval(
                &scripts::PUT_ENTRY,
                dataset,
                &[self.keys.entry(dataset, key), self.keys.cached_datasets()],
                args,
            ))
            .await?;
        let bytes = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .and_then(|s| s.parse::<f64>().ok())
                .map(f64_to_u64)
        };
        match &reply {
            // A removal is deleting the object: only the read was counted.
            Value::Array(items) if items.len() == 1 && items[0].as_str() == Some("deleting") => {
                Ok(None)
            }
            Value::Array(items) => match (bytes(items.first()), bytes(items.get(1))) {
                (Some(dataset), Some(total)) => Ok(Some(StoredBytes { dataset, total })),
                _ => Err(unexpected("put entry", &reply)),
            },
            _ => Err(unexpected("put entry", &reply)),
        }
    }
}

/// A reply of the wrong shape.
fn unexpected(what: &str, reply: &Value) -> IndexError {
    IndexError::Protocol(format!("{what}: unexpected reply {reply:?}"))
}

/// `HINCRBY stats field by`: one dataset counter.
fn count(stats: &str, field: &str, by: u64) -> Command {
    Command::new("HINCRBY").arg(stats).arg(field).arg(by)
}

/// Maps a reply error to what the caller must do: HTTP-level refusals are outages, the rest bugs.
/// The lookup script's reply (see [`scripts::LOOKUP`]), checked.
fn parse_lookup(
    reply: &Value,
    probe: Option<VersionProbe>,
    lease: Option<LeaseAsk<'_>>,
) -> Result<Lookup, IndexError> {
    let Value::Array(items) = reply else {
        return Err(unexpected("lookup", reply));
    };
    let source = match items.get(2) {
        _ if probe.is_none() => SourceVersion::Unprobed,
        Some(Value::Array(state)) => {
            let generation = state
                .get(1)
                .and_then(Value::as_int)
                .and_then(|g| u64::try_from(g).ok());
            match (state.first().and_then(Value::as_str), generation) {
                (Some("current"), Some(g)) => SourceVersion::Current(g),
                (Some("changed"), Some(g)) => SourceVersion::Changed(g),
                (Some("stale"), _) => SourceVersion::Stale,
                _ => return Err(unexpected("lookup", reply)),
            }
        }
        _ => return Err(unexpected("lookup", reply)),
    };
    match items.as_slice() {
        [version, entry, _, file, leased] => Ok(Lookup {
            datasets_version: counter(version),
            entry: IndexEntry::from_hgetall(entry),
            source,
            file_validator: file.as_str().filter(|v| !v.is_empty()).map(str::to_owned),
            lease: match leased.as_str() {
                Some("granted") if lease.is_some() => LeaseAnswer::Granted,
                Some("mine") if lease.is_some() => LeaseAnswer::HeldHere,
                Some("held") if lease.is_some() => LeaseAnswer::HeldElsewhere,
                Some("") => LeaseAnswer::NotTaken,
                _ => return Err(unexpected("lookup", reply)),
            },
        }),
        _ => Err(unexpected("lookup", reply)),
    }
}

/// Whether Redis answered that it does not know the script (`NOSCRIPT …`).
fn is_noscript(answer: &Result<Value, ReplyError>) -> bool {
    matches!(answer, Err(ReplyError::Command(message)) if message.starts_with("NOSCRIPT"))
}

/// `EVALSHA sha …` as `EVAL text …`, for one of the index's scripts.
fn with_text(command: &Command) -> Option<Command> {
    let [name, sha, rest @ ..] = command.args() else {
        return None;
    };
    if name != "EVALSHA" {
        return None;
    }
    let script = scripts::by_sha(sha)?;
    let mut eval = Command::new("EVAL").arg(script.text());
    for arg in rest {
        eval = eval.arg(arg);
    }
    Some(eval)
}

fn classify(error: &ReplyError) -> IndexError {
    match error {
        ReplyError::Http { .. } => IndexError::Unavailable(error.to_string()),
        ReplyError::Command(_) | ReplyError::Protocol(_) => IndexError::Protocol(error.to_string()),
    }
}

impl<T: UpstashTransport> Index for UpstashIndex<T> {
    async fn ping(&self) -> Result<(), IndexError> {
        match self.call(&Command::new("PING")).await? {
            Value::Bytes(b) if b == b"PONG" => Ok(()),
            other => Err(IndexError::Protocol(format!(
                "PING answered {other:?}, not PONG"
            ))),
        }
    }

    async fn lookup(
        &self,
        dataset: &str,
        key: &str,
        now_ms: u64,
        probe: Option<VersionProbe>,
        file: Option<&str>,
        lease: Option<LeaseAsk<'_>>,
    ) -> Result<Lookup, IndexError> {
        let command = self.lookup_command(dataset, key, now_ms, (probe, file), lease);
        let reply = self.call(&command).await?;
        parse_lookup(&reply, probe, lease)
    }

    async fn lookup_many(&self, reads: &[LookupRead<'_>]) -> Result<Vec<Lookup>, IndexError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let commands: Vec<Command> = reads
            .iter()
            .map(|r| self.lookup_command(r.dataset, r.key, r.now_ms, (None, r.file), None))
            .collect();
        self.pipeline(&commands)
            .await?
            .iter()
            .map(|reply| parse_lookup(reply, None, None))
            .collect()
    }

    async fn set_source_version(
        &self,
        dataset: &str,
        digest: &str,
        read_at_ms: u64,
    ) -> Result<u64, IndexError> {
        let command = Command::new("EVALSHA")
            .arg(scripts::SOURCE_VERSION.sha())
            .arg(1)
            .arg(self.keys.source_version(dataset))
            .arg(digest)
            .arg(read_at_ms);
        match self.call(&command).await? {
            Value::Int(n) if n > 0 => Ok(n.unsigned_abs()),
            other => Err(unexpected("set source version", &other)),
        }
    }

    async fn file_validator(&self, url: &str) -> Result<Option<String>, IndexError> {
        let command = Command::new("HGET")
            .arg(self.keys.file_validator(url))
            .arg("validator");
        match self.call(&command).await? {
            Value::Nil => Ok(None),
            other => other
                .as_str()
                .map(|v| Some(v.to_owned()))
                .ok_or_else(|| unexpected("file validator", &other)),
        }
    }

    async fn set_file_validator(
        &self,
        url: &str,
        validator: &str,
        seen_ms: u64,
    ) -> Result<(), IndexError> {
        let command = Command::new("EVALSHA")
            .arg(scripts::FILE_VALIDATOR.sha())
            .arg(1)
            .arg(self.keys.file_validator(url))
            .arg(validator)
            .arg(seen_ms)
            .arg(FILE_VALIDATOR_TTL_MS);
        self.call(&command).await.map(|_| ())
    }

    async fn bump_source_version(&self, dataset: &str, now_ms: u64) -> Result<u64, IndexError> {
        let command = Command::new("EVALSHA")
            .arg(scripts::BUMP_VERSION.sha())
            .arg(1)
            .arg(self.keys.source_version(dataset))
            .arg(now_ms);
        match self.call(&command).await? {
            Value::Int(n) if n > 0 => Ok(n.unsigned_abs()),
            other => Err(unexpected("bump source version", &other)),
        }
    }

    async fn record_miss(
        &self,
        dataset: &str,
        key: &str,
        origin_bytes: u64,
        stored: Option<&IndexEntry>,
        ttl_ms: u64,
    ) -> Result<Option<StoredBytes>, IndexError> {
        if let Some(entry) = stored {
            return self
                .put_entry(
                    dataset,
                    key,
                    entry,
                    ttl_ms,
                    entry.created_ms,
                    Some(origin_bytes),
                )
                .await;
        }
        let stats = self.keys.stats(dataset);
        self.pipeline(&[
            count(&stats, stats_fields::MISSES, 1),
            count(&stats, stats_fields::BYTES_FROM_ORIGIN, origin_bytes),
        ])
        .await
        .map(|_| None)
    }

    async fn count_read(&self, dataset: &str, hit: bool, bytes: u64) -> Result<(), IndexError> {
        let stats = self.keys.stats(dataset);
        let commands = if hit {
            vec![
                count(&stats, stats_fields::HITS, 1),
                count(&stats, stats_fields::BYTES_FROM_CACHE, bytes),
            ]
        } else {
            vec![count(&stats, stats_fields::MISSES, 1)]
        };
        self.pipeline(&commands).await.map(|_| ())
    }

    async fn forget(&self, dataset: &str, key: &str, entry: &IndexEntry) -> Result<(), IndexError> {
        self.call(&self.dataset_eval(
            &scripts::FORGET,
            dataset,
            &[self.keys.entry(dataset, key)],
            [
                key.to_owned(),
                entry.object_key.clone(),
                entry.created_ms.to_string(),
                entry.size.to_string(),
            ],
        ))
        .await
        .map(|_| ())
    }

    async fn adopt(
        &self,
        dataset: &str,
        key: &str,
        entry: &IndexEntry,
        ttl_ms: u64,
    ) -> Result<Option<StoredBytes>, IndexError> {
        self.put_entry(dataset, key, entry, ttl_ms, entry.last_access_ms, None)
            .await
    }

    async fn try_lease(&self, object: &str, holder: &str, ttl_ms: u64) -> Result<bool, IndexError> {
        let reply = self
            .call(
                &Command::new("SET")
                    .arg(self.keys.lease(object))
                    .arg(holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms.max(1)),
            )
            .await?;
        Ok(reply != Value::Nil)
    }

    async fn release_lease(&self, object: &str, holder: &str) -> Result<(), IndexError> {
        self.call(
            &Command::new("EVALSHA")
                .arg(scripts::RELEASE_LEASE.sha())
                .arg(1)
                .arg(self.keys.lease(object))
                .arg(holder),
        )
        .await
        .map(|_| ())
    }

    async fn cache_stats(&self, datasets: &[String]) -> Result<Vec<CacheStats>, IndexError> {
        if datasets.is_empty() {
            return Ok(Vec::new());
        }
        let commands: Vec<Command> = datasets
            .iter()
            .map(|d| self.dataset_eval(&scripts::STATS, d, &[], ["50".into(), "95".into()]))
            .collect();
        self.pipeline(&commands)
            .await?
            .iter()
            .map(|reply| {
                CacheStats::from_stats_reply(reply).ok_or_else(|| unexpected("stats", reply))
            })
            .collect()
    }

    async fn claim(
        &self,
        dataset: &str,
        selector: &ClaimSelector,
        now_ms: u64,
        token: &str,
        most: u64,
    ) -> Result<Vec<ClaimedKey>, IndexError> {
        let (mode, argument, policy) = match selector {
            ClaimSelector::Expired => ("expired", String::new(), EvictionPolicy::Lru),
            ClaimSelector::Capacity(limit) => {
                ("capacity", limit.capacity_bytes.to_string(), limit.policy)
            }
            ClaimSelector::Head { count, policy } => ("head", count.to_string(), *policy),
            ClaimSelector::Key(key) => ("key", key.clone(), EvictionPolicy::Lru),
            ClaimSelector::Prefix(prefix) => ("prefix", prefix.clone(), EvictionPolicy::Lru),
            ClaimSelector::All => ("all", String::new(), EvictionPolicy::Lru),
        };
        let reply = self
            .call(
                &self.dataset_eval(
                    &scripts::CLAIM,
                    dataset,
                    &[],
                    [
                        now_ms.to_string(),
                        token.to_owned(),
                        most.max(1).to_string(),
                        mode.to_owned(),
                        argument,
                        policy.order().position().to_string(),
                        if policy == EvictionPolicy::Cost {
                            "1"
                        } else {
                            "0"
                        }
                        .to_owned(),
                        DELETING_MS.to_string(),
                    ],
                ),
            )
            .await?;
        ClaimedKey::from_claim_reply(&reply).ok_or_else(|| unexpected("claim", &reply))
    }

    async fn drop_claimed(
        &self,
        dataset: &str,
        keys: &[String],
        deleted: &[String],
        token: &str,
    ) -> Result<(), IndexError> {
        if keys.is_empty() && deleted.is_empty() {
            return Ok(());
        }
        let mut command = Command::new("EVALSHA")
            .arg(scripts::DROP_CLAIMED.sha())
            .arg(keys.len() + deleted.len());
        for key in keys {
            command = command.arg(self.keys.entry(dataset, key));
        }
        for object in deleted {
            command = command.arg(self.keys.deleting(object));
        }
        self.call(&command.arg(token).arg(keys.len()))
            .await
            .map(|_| ())
    }

    async fn lowest_scores(
        &self,
        datasets: &[String],
        order: Order,
    ) -> Result<Vec<Option<f64>>, IndexError> {
        if datasets.is_empty() {
            return Ok(Vec::new());
        }
        let commands: Vec<Command> = datasets
            .iter()
            .map(|d| {
                Command::new("ZRANGE")
                    .arg(self.keys.order(d, order))
                    .arg(0)
                    .arg(0)
                    .arg("WITHSCORES")
            })
            .collect();
        Ok(self
            .pipeline(&commands)
            .await?
            .iter()
            .map(|reply| match reply {
                Value::Array(items) => items
                    .get(1)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<f64>().ok()),
                _ => None,
            })
            .collect())
    }

    async fn total_stored(&self) -> Result<u64, IndexError> {
        let reply = self
            .call(
                &Command::new("HGET")
                    .arg(self.keys.totals())
                    .arg(stats_fields::BYTES_STORED),
            )
            .await?;
        Ok(reply
            .as_int()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0))
    }

    async fn list_keys(
        &self,
        dataset: &str,
        sort: KeySort,
        descending: bool,
        offset: u64,
        limit: u64,
    ) -> Result<KeyPage, IndexError> {
        let (order, negated) = sort.order();
        let reply = self
            .call(&self.dataset_eval(
                &scripts::LIST_KEYS,
                dataset,
                &[],
                [
                    order.position().to_string(),
                    if descending == negated { "0" } else { "1" }.to_owned(),
                    offset.to_string(),
                    limit.max(1).to_string(),
                ],
            ))
            .await?;
        KeyPage::from_list_reply(&reply).ok_or_else(|| unexpected("list keys", &reply))
    }

    async fn objects_held(&self, objects: &[String]) -> Result<Vec<bool>, IndexError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let commands: Vec<Command> = objects
            .iter()
            .map(|o| Command::new("EXISTS").arg(self.keys.holders(o)))
            .collect();
        Ok(self
            .pipeline(&commands)
            .await?
            .iter()
            .map(|reply| reply.as_int() != Some(0))
            .collect())
    }

    async fn runtime_datasets(&self) -> Result<RuntimeDatasets, IndexError> {
        let replies = self
            .pipeline(&[
                Command::new("GET").arg(self.keys.runtime_datasets_version()),
                Command::new("HGETALL").arg(self.keys.runtime_datasets()),
            ])
            .await?;
        let (Some(version), Some(Value::Array(items))) = (replies.first(), replies.get(1)) else {
            return Err(IndexError::Protocol(format!(
                "runtime datasets: unexpected reply {replies:?}"
            )));
        };
        Ok(RuntimeDatasets {
            version: counter(version),
            definitions: items
                .chunks(2)
                .filter_map(|pair| match pair {
                    [id, json] => Some((id.as_str()?.to_owned(), json.as_str()?.to_owned())),
                    _ => None,
                })
                .collect(),
        })
    }

    async fn put_runtime_dataset(&self, id: &str, json: &str) -> Result<bool, IndexError> {
        let replies = self
            .batch(
                Batch::Transaction,
                &[
                    Command::new("HSET")
                        .arg(self.keys.runtime_datasets())
                        .arg(id)
                        .arg(json),
                    Command::new("INCR").arg(self.keys.runtime_datasets_version()),
                ],
            )
            .await?;
        Ok(replies.first().and_then(Value::as_int) == Some(1))
    }

    async fn remove_runtime_dataset(&self, id: &str) -> Result<bool, IndexError> {
        let replies = self
            .batch(
                Batch::Transaction,
                &[
                    Command::new("HDEL")
                        .arg(self.keys.runtime_datasets())
                        .arg(id),
                    Command::new("INCR").arg(self.keys.runtime_datasets_version()),
                ],
            )
            .await?;
        Ok(replies.first().and_then(Value::as_int) == Some(1))
    }

    async fn cached_datasets(&self) -> Result<Vec<String>, IndexError> {
        let reply = self
            .call(&Command::new("SMEMBERS").arg(self.keys.cached_datasets()))
            .await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected("cached datasets", &reply));
        };
        let mut ids: Vec<String> = items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn drop_dataset_records(&self, dataset: &str) -> Result<(), IndexError> {
        self.call(
            &Command::new("SREM")
                .arg(self.keys.cached_datasets())
                .arg(dataset),
        )
        .await?;
        let mut command = Command::new("DEL")
            .arg(self.keys.stats(dataset))
            .arg(self.keys.objects(dataset))
            .arg(self.keys.history(dataset));
        for order in Order::ALL {
            command = command.arg(self.keys.order(dataset, order));
        }
        self.call(&command).await.map(|_| ())
    }

    async fn record_snapshot(
        &self,
        dataset: &str,
        snapshot: &str,
        keep: u64,
    ) -> Result<(), IndexError> {
        let history = self.keys.history(dataset);
        // `LTRIM h 0 -1` would keep everything: keeping none is a delete.
        if keep == 0 {
            return self
                .call(&Command::new("DEL").arg(&history))
                .await
                .map(|_| ());
        }
        self.pipeline(&[
            Command::new("LPUSH").arg(&history).arg(snapshot),
            Command::new("LTRIM").arg(&history).arg(0).arg(keep - 1),
        ])
        .await
        .map(|_| ())
    }

    async fn orphan_cursor(&self) -> Result<Option<String>, IndexError> {
        let reply = self
            .call(&Command::new("GET").arg(self.keys.orphan_cursor()))
            .await?;
        match reply {
            Value::Nil => Ok(None),
            other => other
                .as_str()
                .map(|c| Some(c.to_owned()))
                .ok_or_else(|| unexpected("orphan cursor", &other)),
        }
    }

    async fn set_orphan_cursor(&self, cursor: Option<&str>) -> Result<(), IndexError> {
        let key = self.keys.orphan_cursor();
        let command = match cursor {
            // A week: a cursor that old is better started afresh.
            Some(cursor) => Command::new("SET")
                .arg(key)
                .arg(cursor)
                .arg("EX")
                .arg(604_800),
            None => Command::new("DEL").arg(key),
        };
        self.call(&command).await.map(|_| ())
    }

    async fn snapshots(&self, dataset: &str, most: u64) -> Result<Vec<String>, IndexError> {
        // `LRANGE h 0 -1` would answer everything.
        if most == 0 {
            return Ok(Vec::new());
        }
        let reply = self
            .call(
                &Command::new("LRANGE")
                    .arg(self.keys.history(dataset))
                    .arg(0)
                    .arg(most - 1),
            )
            .await?;
        let Value::Array(items) = &reply else {
            return Err(unexpected("snapshots", &reply));
        };
        Ok(items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::CannedTransport;
    use crate::index::transport::{RawReply, TransportError};
    use futures::executor::block_on;

    /// Answers each call with the next reply of a script.
    struct Sequenced {
        replies: std::cell::RefCell<std::collections::VecDeque<RawReply>>,
        sent: std::cell::RefCell<Vec<HttpCall>>,
    }

    impl Sequenced {
        fn new(replies: &[(u16, &str)]) -> Self {
            Self {
                replies: std::cell::RefCell::new(
                    replies
                        .iter()
                        .map(|(status, body)| RawReply {
                            status: *status,
                            body: body.as_bytes().to_vec(),
                        })
                        .collect(),
                ),
                sent: std::cell::RefCell::default(),
            }
        }
    }

    impl UpstashTransport for Sequenced {
        async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError> {
            self.sent.borrow_mut().push(call.clone());
            self.replies
                .borrow_mut()
                .pop_front()
                .ok_or_else(|| TransportError::Network("no more replies".into()))
        }
    }

    const NOSCRIPT: &str = r#"{"error":"NOSCRIPT No matching script. Please use EVAL."}"#;

    /// Scripts go out as `EVALSHA` with their SHA-1 (as Redis computes it); a `NOSCRIPT`
    /// answer is followed by one `EVAL` with the text, and then by `EVALSHA` again.
    #[test]
    fn scripts_are_sent_by_sha_with_an_eval_fallback() {
        assert_eq!(
            Script::new("return 1").sha(),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        let index = UpstashIndex::new(
            Sequenced::new(&[
                (400, NOSCRIPT),
                (200, r#"{"result":1}"#),
                (200, r#"{"result":0}"#),
            ]),
            "tok",
            CacheKeys::new("t"),
        );
        block_on(index.release_lease("obj", "me")).unwrap();
        block_on(index.release_lease("obj", "me")).unwrap();
        let sent = index.transport.sent.borrow();
        let body = |i: usize| serde_json::from_str::<serde_json::Value>(&sent[i].body).unwrap();
        assert_eq!(body(0)[0], "EVALSHA");
        assert_eq!(body(0)[1], scripts::RELEASE_LEASE.sha());
        assert_eq!(body(1)[0], "EVAL");
        assert_eq!(body(1)[1], scripts::RELEASE_LEASE.text());
        assert_eq!(
            body(1).as_array().unwrap()[2..],
            body(0).as_array().unwrap()[2..],
            "same keys and arguments"
        );
        assert_eq!(body(2)[0], "EVALSHA");
        assert!(sent[2].body.len() < 200, "a call without the script text");
    }

    /// In a pipeline, only the commands Redis answered `NOSCRIPT` are sent again, as `EVAL`.
    #[test]
    fn pipelines_resend_only_unknown_scripts() {
        let index = UpstashIndex::new(
            Sequenced::new(&[
                (200, &format!("[{NOSCRIPT},{NOSCRIPT}]")),
                (200, r#"[{"result":[[],0,"",""]},{"result":[[],0,"",""]}]"#),
            ]),
            "tok",
            CacheKeys::new("t"),
        );
        let stats = block_on(index.cache_stats(&["a".into(), "b".into()])).unwrap();
        assert_eq!(stats.len(), 2);
        let sent = index.transport.sent.borrow();
        assert_eq!(sent.len(), 2);
        assert!(sent[0].body.contains("EVALSHA") && !sent[0].body.contains("redis.call"));
        assert!(sent[1].body.contains("redis.call") && !sent[1].body.contains("EVALSHA"));
    }

    /// `Debug` never shows the token.
    #[test]
    fn debug_redacts_the_token() {
        let index = UpstashIndex::new(
            CannedTransport::answering(200, "{}"),
            "s3cr3t-token",
            CacheKeys::new("t"),
        );
        let shown = format!("{index:?} {index:#?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
    }

    /// PING goes out as one single command with the bearer token; PONG (base64) means healthy.
    #[test]
    fn ping_sends_one_command_and_accepts_pong() {
        let index = UpstashIndex::new(
            CannedTransport::answering(200, r#"{"result":"UE9ORw=="}"#),
            "tok",
            CacheKeys::new("t"),
        );
        assert_eq!(block_on(index.ping()), Ok(()));
        let sent = index.transport.sent.borrow();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body, r#"["PING"]"#);
    }

    /// Outages and refusals are `Unavailable`; odd answers are `Protocol`.
    #[test]
    fn ping_failures_are_classified() {
        let cases = [
            (
                CannedTransport::failing(TransportError::Timeout(2000)),
                "Unavailable",
            ),
            (
                CannedTransport::answering(401, r#"{"error":"Unauthorized"}"#),
                "Unavailable",
            ),
            (CannedTransport::answering(503, "redis down"), "Unavailable"),
            (
                CannedTransport::answering(200, r#"{"result":"T0s="}"#),
                "Protocol",
            ),
            (
                CannedTransport::answering(400, r#"{"error":"ERR nope"}"#),
                "Protocol",
            ),
        ];
        for (transport, want) in cases {
            let got = block_on(UpstashIndex::new(transport, "t", CacheKeys::new("t")).ping())
                .unwrap_err();
            let kind = match got {
                IndexError::Unavailable(_) => "Unavailable",
                IndexError::Protocol(_) => "Protocol",
            };
            assert_eq!(kind, want, "{got}");
        }
    }
}
