//! Helpers shared by Weft's cross-crate tests (see the test files beside this one).
