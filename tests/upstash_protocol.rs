//! The sans-IO Upstash encoder and decoder against a real Redis behind `upstash-local`.
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`. By hand: start the
//! stack, then `ZEC_UPSTASH_URL=… ZEC_UPSTASH_TOKEN=… cargo test --test upstash_protocol -- --include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{stack_var, unique_prefix, UreqTransport};
use futures::executor::block_on;
use zarr_edge_cache::index::transport::UpstashTransport;
use zarr_edge_cache::index::upstash::UpstashIndex;
use zarr_edge_cache::index::{Index, IndexError};
use zarr_edge_cache::keys::CacheKeys;
use zarr_edge_cache::upstash::{
    decode_batch, decode_single, Batch, Command, HttpCall, ReplyError, Value,
};

fn transport() -> UreqTransport {
    UreqTransport::new(&stack_var("ZEC_UPSTASH_URL"))
}

fn single(command: &Command) -> Result<Value, ReplyError> {
    let call = HttpCall::single(&stack_var("ZEC_UPSTASH_TOKEN"), command);
    let raw = block_on(transport().send(&call)).expect("upstash-local answers");
    decode_single(raw.status, &raw.body)
}

fn batch(kind: Batch, commands: &[Command]) -> Result<Vec<Result<Value, ReplyError>>, ReplyError> {
    let call = HttpCall::batch(&stack_var("ZEC_UPSTASH_TOKEN"), kind, commands);
    let raw = block_on(transport().send(&call)).expect("upstash-local answers");
    decode_batch(raw.status, &raw.body, commands.len())
}

/// PING through the real index type succeeds; a wrong token is an outage, not a protocol bug.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn index_ping_and_wrong_token() {
    let index = UpstashIndex::new(
        transport(),
        stack_var("ZEC_UPSTASH_TOKEN"),
        CacheKeys::new("it"),
    );
    assert_eq!(block_on(index.ping()), Ok(()));
    let wrong = UpstashIndex::new(transport(), "not-the-token", CacheKeys::new("it"));
    assert!(matches!(
        block_on(wrong.ping()),
        Err(IndexError::Unavailable(_))
    ));
}

/// Unicode and quotes survive the JSON + base64 round trip; nil and integers decode as such.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn set_get_round_trips_text_and_types() {
    let key = unique_prefix("roundtrip");
    let value = "température \"°C\" — 気温 ✓";
    assert_eq!(
        single(
            &Command::new("SET")
                .arg(&key)
                .arg(value)
                .arg("PX")
                .arg(60_000)
        ),
        Ok(Value::Bytes(b"OK".to_vec()))
    );
    assert_eq!(
        single(&Command::new("GET").arg(&key)).unwrap().as_str(),
        Some(value)
    );
    assert_eq!(
        single(&Command::new("GET").arg(format!("{key}:absent"))),
        Ok(Value::Nil)
    );
    assert_eq!(single(&Command::new("DEL").arg(&key)), Ok(Value::Int(1)));
}

/// SET NX PX: the second writer loses (nil), and the lease carries a TTL.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn set_nx_px_is_a_lease() {
    let key = unique_prefix("lease");
    let take = || {
        single(
            &Command::new("SET")
                .arg(&key)
                .arg("holder")
                .arg("NX")
                .arg("PX")
                .arg(30_000),
        )
    };
    assert_eq!(take(), Ok(Value::Bytes(b"OK".to_vec())));
    assert_eq!(take(), Ok(Value::Nil));
    let ttl = single(&Command::new("PTTL").arg(&key))
        .unwrap()
        .as_int()
        .unwrap();
    assert!((1..=30_000).contains(&ttl), "PTTL {ttl}");
    single(&Command::new("DEL").arg(&key)).unwrap();
}

/// A pipeline answers every command, a failing one in the middle included.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn pipeline_keeps_per_command_errors() {
    let key = unique_prefix("pipe");
    let got = batch(
        Batch::Pipeline,
        &[
            Command::new("SET").arg(&key).arg("text"),
            Command::new("HINCRBY").arg(&key).arg("f").arg(1),
            Command::new("HSET")
                .arg(format!("{key}:h"))
                .arg("hits")
                .arg(3),
            Command::new("HGETALL").arg(format!("{key}:h")),
            Command::new("DEL").arg(&key).arg(format!("{key}:h")),
        ],
    )
    .unwrap();
    assert_eq!(got[0], Ok(Value::Bytes(b"OK".to_vec())));
    assert!(
        matches!(&got[1], Err(ReplyError::Command(e)) if e.starts_with("WRONGTYPE")),
        "{:?}",
        got[1]
    );
    assert_eq!(got[2], Ok(Value::Int(1)));
    assert_eq!(
        got[3],
        Ok(Value::Array(vec![
            Value::Bytes(b"hits".to_vec()),
            Value::Bytes(b"3".to_vec())
        ]))
    );
    assert_eq!(got[4], Ok(Value::Int(2)));
}

/// A transaction applies atomically; a queue-time error discards it whole.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn transaction_applies_or_is_discarded_whole() {
    let key = unique_prefix("multi");
    let got = batch(
        Batch::Transaction,
        &[
            Command::new("INCRBY").arg(&key).arg(5),
            Command::new("INCRBY").arg(&key).arg(2),
            Command::new("PEXPIRE").arg(&key).arg(60_000),
        ],
    )
    .unwrap();
    assert_eq!(
        got,
        vec![Ok(Value::Int(5)), Ok(Value::Int(7)), Ok(Value::Int(1))]
    );
    let discarded = batch(
        Batch::Transaction,
        &[
            Command::new("INCRBY").arg(&key).arg(1),
            Command::new("NOSUCHCOMMAND"),
        ],
    );
    assert!(
        matches!(discarded, Err(ReplyError::Command(_))),
        "{discarded:?}"
    );
    assert_eq!(
        single(&Command::new("GET").arg(&key)).unwrap().as_int(),
        Some(7)
    );
    single(&Command::new("DEL").arg(&key)).unwrap();
}
