//! Layer 6: hard recovery. The checks a backup set must pass before anything is written
//! ([`checks`]), shared by restore and by backup-set verification.

pub mod checks;
