//! The covfleet node agent.
//!
//! One process per node (a DaemonSet with `hostPID`, a systemd unit, or by
//! hand) that finds every instrumented process on the node — pods,
//! hostNetwork pods, host daemons — and keeps their coverage in a sink for
//! as long as they live:
//!
//! * [`discovery`]: listening sockets in the coverage port range, once per
//!   network namespace, paired with the processes holding them;
//! * [`cgroup`]: PID → container ID; [`pods`]: container → pod (the node's
//!   pods from the API server, `crictl` as the fallback);
//! * [`engine`]: identity checks, reaching servers (host loopback, pod IP,
//!   or from inside the process's network namespace), the adaptive
//!   schedule, pending snapshots while the sink is down;
//! * storing: the `store` crate's uploader (seed layout, spool);
//!   [`metrics`]: `/healthz` and `/metrics`; [`kubeconfig`]: finding
//!   credentials, also once the node has them (bootstrap mode);
//!   [`exits`]: exit-time data of short-lived programs (`--watch-dir`),
//!   attributed by their writers' cgroups ([`writers`]: fanotify).

pub mod cgroup;
pub mod discovery;
pub mod engine;
pub mod exits;
pub mod kubeconfig;
pub mod metrics;
pub mod pods;
pub mod writers;

pub use engine::{Agent, Config};
