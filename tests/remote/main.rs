//! Integration tests of backup targets: sets on a real 3-node Garage cluster (S3 through
//! object_store) and in folders, through the same code. The cluster is started by the tests
//! (`ese_garage`, which installs Garage 2.5.0 first if this machine has none). One module
//! per scenario family.

#[path = "../support/mod.rs"]
mod support;

mod object_chain;
mod object_damage;
mod object_faults;
mod object_nodes;
mod object_refusals;
mod prune_sets;
mod retention_edges;
