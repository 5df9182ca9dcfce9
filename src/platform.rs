//! The platform a deployment runs on: its index, chunk store, origin, clock and reference
//! source, named once as associated types so that handlers take one parameter (`P: Platform`)
//! instead of five. The glue names the Workers platform; unit tests name the fakes.

use crate::clock::Clock;
use crate::index::Index;
use crate::origin::Origin;
use crate::source::refs::ReferenceSource;
use crate::store::ChunkStore;

/// The backends of one deployment. A marker: values of these types travel in
/// [`CacheBackends`](crate::cache::CacheBackends) and the request context.
pub trait Platform: 'static {
    /// The shared index of cached keys.
    type Index: Index + 'static;
    /// Where chunk bytes live.
    type Store: ChunkStore + 'static;
    /// The archive references point into.
    type Origin: Origin + 'static;
    /// Time and waiting.
    type Clock: Clock + 'static;
    /// Where reference files come from.
    type Refs: ReferenceSource;
}

/// The unread body of an object in the platform's chunk store.
pub type Body<P> = <<P as Platform>::Store as ChunkStore>::Body;
