//! B+trees of byte-string keys and values over pages.
