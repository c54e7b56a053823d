//! The coverage-server protocol and the machinery to scrape it.
//!
//! A program built with `-cover -covermode=atomic` and the injected coverage
//! server answers on a port in `53700..=53749` (see [`protocol`]). This crate
//! finds such servers ([`local`] sockets on this host, [`kube`] pods, host
//! daemons through the node proxy ([`nodes`]), plain URLs), talks to them through a [`transport::Transport`] (direct TCP, the
//! Kubernetes API server's pod `proxy` subresource, a port-forward, or from
//! inside a network namespace, [`netns`]),
//! checks their identity, fetches snapshots with timeouts, retries and
//! bounded concurrency, and writes GOCOVERDIR-compatible directories
//! ([`output`]) that `go tool covdata` and `covfleet compile` read.
//!
//! [`collect`] ties it together: one-shot collection, `--watch` with the
//! adaptive schedule ([`schedule`]), and `reset`.

pub mod budget;
pub mod collect;
pub mod error;
mod groupsync;
pub mod kube;
pub mod local;
pub mod marks;
pub mod netns;
pub mod nodes;
pub mod output;
pub mod protocol;
pub mod schedule;
pub mod transport;
pub mod wire;

pub use error::{Error, HeaderError, TransportError, TransportErrorKind, UrlError};
pub use protocol::{ClientOptions, Identity, Probe, Snapshot};
