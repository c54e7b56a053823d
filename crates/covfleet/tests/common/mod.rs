//! Shared helpers for the covfleet integration tests.
#![allow(dead_code)]

pub mod fixtures;
pub mod oracle;
