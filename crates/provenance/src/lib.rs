//! Where a binary's source lives: a container image → its source repository
//! and commit → a local checkout.
//!
//! - [`image`]: the labels OpenShift builds put on images, read through the
//!   OCI distribution API (or `oc image info`); implements
//!   [`db::ImageInspector`] so that `compile --inspect-images` can use it.
//! - [`checkout`]: `covfleet clone-sources`, each repository at its commit
//!   under `DIR/repos/<host>/<org>/<repo>/<commit8>/`.
//!
//! Async code here runs on the runtime the caller passes in; this crate never
//! builds a runtime nor installs a TLS provider (the binary does both once).

pub mod checkout;
pub mod error;
pub mod image;

pub use error::{CloneError, InspectError};
