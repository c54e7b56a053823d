//! The interface `compile --inspect-images` looks image sources up through.
//!
//! The database layer only stores what is found (`image_sources`); the
//! lookup itself (registries, `oc`) lives in the `provenance` crate, which
//! implements [`ImageInspector`].

/// Where an image says its source lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageLabels {
    /// The source repository URL, when labelled.
    pub source_url: Option<String>,
    /// The source commit, when labelled.
    pub source_commit: Option<String>,
    /// Where the answer came from, stored in `image_sources.origin`
    /// (`label`: the OCI registry; `oc`: `oc image info`).
    pub origin: &'static str,
}

/// Why an image could not be inspected (recorded, never fatal).
pub type InspectFailure = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Looks up the source labels of container images.
pub trait ImageInspector: Send + Sync {
    /// One result per image, in the order given. Must not panic and must not
    /// fail as a whole.
    fn inspect(&self, images: &[String]) -> Vec<Result<ImageLabels, InspectFailure>>;
}
