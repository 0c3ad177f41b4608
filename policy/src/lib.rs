//! weavice-policy: reads node journals (pods and flows), joins each flow to
//! the pods that held its addresses then, aggregates connections, and
//! writes NetworkPolicies and flow graphs. No root, no node access.
//!
//! [`scan`] reads journals ([`sources`], [`flowline`]) into
//! [`connections`]; [`cluster`] resolves pods to workloads and selectors
//! from `kubectl ... -o json`; [`generate`] writes policies ([`yaml`]);
//! [`list`] and [`graph`] show what was observed.

pub mod cluster;
pub mod connections;
pub mod error;
pub mod explain;
pub mod flowline;
pub mod generate;
pub mod graph;
pub mod list;
pub mod netpol;
pub mod progress;
pub mod scan;
pub mod sources;
pub mod validate;
pub mod window;
pub mod yaml;
