//! Coverage snapshots in object storage.
//!
//! - [`config`]: the seed's S3 configuration JSON ([`config::S3Config`]).
//! - [`registry_auth`]: the `cluster-code-coverage.openshift.io` pull-secret
//!   entry that carries it to every node.
pub mod config;
pub mod download;
pub mod error;
pub mod layout;
pub mod mirror;
pub mod registry_auth;
pub mod sink;
pub mod upload;

pub use error::Error;
pub use layout::Location;
pub use sink::{Credentials, Sink, SinkOptions};
