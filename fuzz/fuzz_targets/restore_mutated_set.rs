//! Restore of a mutated backup set: one good set is made once; each input is a list of
//! mutations (see `ese_fuzz::mutate`) and a stop point, applied to a copy, then
//! `external_restore` runs. It must return `Ok` or an ESE error, never panic.
#![no_main]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use ese::Lsn;
use ese::restore::{external_restore, RestoreSpec, StopAt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let set = ese_fuzz::set();
    let mut input = ese_fuzz::Input::new(data);
    let stop_at = match input.u8() % 4 {
        0 => None,
        1 => Some(StopAt::Generation(input.u32() % (set.gen_high() + 2))),
        2 => Some(StopAt::LogPosition(Lsn::new(
            set.gen_low() + input.u8() as u32 % 4,
            input.u16() as u32,
        ))),
        _ => Some(StopAt::Time(
            UNIX_EPOCH + Duration::from_millis(input.u32() as u64 * 1000),
        )),
    };
    let files = ese_fuzz::mutate(set, &mut input);
    let fs = ese_fuzz::storage_with(&files);
    let dir = Path::new(ese_fuzz::RESTORE_DIR);
    let spec = RestoreSpec {
        checkpoint_dir: dir.to_path_buf(),
        log_dir: dir.to_path_buf(),
        backup_log_dir: dir.to_path_buf(),
        gen_low: set.gen_low(),
        gen_high: set.gen_high(),
        base_name: "edb".into(),
        restore_map: vec![(set.original.clone(), dir.join("restored.edb"))],
        stop_at,
    };
    let _ = external_restore(&fs, &spec);
});
