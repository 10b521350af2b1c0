//! Integration and conformance tests for custody live under `tests/tests/`.
