//! The labels an entry gives each of its reports.

/// Where a report's processes ran and where their source lives, as an
/// entry's `metadata.json` and `info.json` say (with fallbacks). Shared by
/// what compile reads ([`crate::entry::EntryInfo`]) and what the read API
/// returns ([`crate::Report`]); stored in `report_sources` under the same
/// column names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels {
    /// Kubernetes namespace; `_host_` for a host process.
    pub namespace: String,
    /// Pod name; empty for a host process.
    pub pod_name: String,
    /// Container name within the pod.
    pub container_name: String,
    /// The container's image reference.
    pub image: String,
    /// The program's name (`metadata.json`, `info.json`, else `argv[0]`).
    pub binary_name: String,
    /// The node or host the process ran on.
    pub hostname: String,
    /// True for a process outside any pod.
    pub host_process: bool,
    /// When the snapshot was collected (RFC 3339, as written).
    pub collected_at: String,
    /// The source repository (`info.json`), when known.
    pub source_url: Option<String>,
    /// The source commit (`info.json`), when known.
    pub source_commit: Option<String>,
}
