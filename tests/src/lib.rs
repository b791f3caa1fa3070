//! Cross-topic checks live in `tests/`; this library is empty.
