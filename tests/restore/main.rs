//! Integration tests of restore through the actor runtime (`ese_actors`): end to end, damaged
//! sets, point in time, same names, and the paths backup and restore refuse to reach. One
//! module per scenario family.

#[path = "../support/mod.rs"]
mod support;

mod restore_chain_kinds;
mod restore_damaged;
mod restore_e2e;
mod restore_in_place;
mod restore_moved_database;
mod restore_pitr;
mod restore_pitr_edges;
mod restore_roll_forward;
mod restore_same_names;
mod security;
