//! Kerchunk references (being written).
