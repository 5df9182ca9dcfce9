//! Sans-IO Upstash REST protocol: build HTTP calls from Redis commands and decode the replies.
//!
//! Nothing here performs I/O. A transport (`glue::upstash_fetch` on wasm, a blocking HTTP client in
//! the native tests) sends an [`HttpCall`] and hands the status and body back to [`reply`]. This is
//! mini-redis's `Frame`/`Connection` split applied to HTTP: the real encoder and decoder are tested
//! natively against a real Redis behind the project's Upstash-compatible server.
//!
//! Protocol facts (Upstash docs, `redis/features/restapi`): a single command is `POST /` with a JSON
//! array body; `POST /pipeline` and `POST /multi-exec` take a JSON array of such arrays and answer
//! `[{"result": …} | {"error": …}, …]`; a command error is HTTP 400 with `{"error": "…"}`; with
//! `Upstash-Encoding: base64` every string in a result, nested ones too, is base64 except the
//! literal `"OK"`.

pub mod command;
pub mod reply;

pub use command::{Batch, Command, HttpCall};
pub use reply::{decode_batch, decode_single, ReplyError, Value};
