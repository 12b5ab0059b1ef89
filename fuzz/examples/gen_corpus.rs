//! Writes the seed corpus of every target into `fuzz/corpus/<target>/` from a backup set
//! made with the engine: `cargo run --example gen_corpus` (in `fuzz/`).

use std::path::Path;

fn put(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn with_mode(mode: u8, b: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(b);
    v
}

fn main() {
    let set = ese_fuzz::set();
    let ps = ese_fuzz::PAGE_SIZE;
    // log_reader: the last (smallest-content) log whole, raw and for re-sealing, plus a record.
    let (g, log) = set.logs.last().unwrap();
    put("log_reader", "log-raw", &with_mode(0, log));
    put("log_reader", "log-reseal", &with_mode(1, log));
    let recs = &set.records[set.logs.len() - 1];
    if let Some(&(off, len)) = recs.first() {
        let mut b = vec![2u8];
        b.extend_from_slice(&g.to_le_bytes());
        b.extend_from_slice(&(off as u32).to_le_bytes());
        b.extend_from_slice(&log[..off + len]);
        put("log_reader", "record-at", &b);
    }
    // Payloads of each record type seen (type byte, then payload).
    let mut seen = std::collections::BTreeSet::new();
    for ((g, b), recs) in set.logs.iter().zip(&set.records) {
        for &(off, _) in recs {
            let f = ese::internals::log::read_record(b, *g, off).unwrap();
            let ty = f.record.type_byte();
            if seen.insert(ty) {
                let mut v = vec![3u8, ty];
                v.extend(f.record.payload());
                put("log_reader", &format!("payload-{ty}"), &v);
            }
        }
    }
    // db_header_page: header, trailer, meta, catalog and a leaf/interior page.
    let img = &set.image;
    put("db_header_page", "header", &with_mode(0, &img[..ps]));
    put(
        "db_header_page",
        "trailer",
        &with_mode(0, &img[img.len() - ps..]),
    );
    let mut kinds = std::collections::BTreeSet::new();
    for p in img.chunks(ps).skip(2) {
        if let Some(k) = ese::internals::page::kind(p) {
            if kinds.insert(k as u8) {
                put(
                    "db_header_page",
                    &format!("page-kind{}", k as u8),
                    &with_mode(0, p),
                );
            }
        }
    }
    // checkpoint_reader: the whole file; its slot body for mode 1.
    put(
        "checkpoint_reader",
        "chk-raw",
        &with_mode(0, &set.checkpoint),
    );
    for s in 0..2 {
        let slot = &set.checkpoint[s * 32768..(s + 1) * 32768];
        if slot[4..12] == *b"ESECHK01" {
            let n = u32::from_le_bytes(slot[12..16].try_into().unwrap()) as usize;
            put(
                "checkpoint_reader",
                &format!("chk-body{s}"),
                &with_mode(1, &slot[12..16 + n]),
            );
        }
    }
    // manifest_reader: a template that matches the set the target makes.
    let tmp = std::env::temp_dir().join(format!("ese-gen-corpus-{}", std::process::id()));
    let files = ese_fuzz::write_set_dir(set, &tmp).unwrap();
    let template = ese_fuzz::manifest_template(set, &files);
    // The seed must describe a good set: fill it in and verify.
    let filled = ese_fuzz::fill_manifest(template.as_bytes(), set, &files);
    std::fs::write(tmp.join("manifest.json"), filled).unwrap();
    let report = ese_actors::verify_backup_set(&tmp).expect("the seed manifest verifies");
    println!(
        "manifest seed verifies: {} pages, {} logs",
        report.pages, report.logs
    );
    let _ = std::fs::remove_dir_all(&tmp);
    put("manifest_reader", "manifest.json", template.as_bytes());
    // The unmutated set restores.
    let files = ese_fuzz::mutate(set, &mut ese_fuzz::Input::new(&[]));
    let fs = ese_fuzz::storage_with(&files);
    let dir = Path::new(ese_fuzz::RESTORE_DIR);
    let spec = ese::restore::RestoreSpec {
        checkpoint_dir: dir.to_path_buf(),
        log_dir: dir.to_path_buf(),
        backup_log_dir: dir.to_path_buf(),
        gen_low: set.gen_low(),
        gen_high: set.gen_high(),
        base_name: "edb".into(),
        restore_map: vec![(set.original.clone(), dir.join("restored.edb"))],
        stop_at: None,
    };
    let rep = ese::restore::external_restore(&fs, &spec).expect("the set restores");
    println!("set restores: {} commits", rep.commits);
    // restore_mutated_set: no mutation; a page rewrite; a record rewrite; a truncation.
    put("restore_mutated_set", "none", &[0]);
    put("restore_mutated_set", "stop-gen", &[1, 2, 0, 0, 0]);
    put(
        "restore_mutated_set",
        "page-reseal",
        &[0, 0, 3, 3, 0, 0x40, 0, 4, 1, 2, 3, 4],
    );
    put(
        "restore_mutated_set",
        "record-reseal",
        &[0, 1, 3, 1, 0, 0x20, 0, 4, 9, 9, 9, 9],
    );
    put(
        "restore_mutated_set",
        "truncate-log",
        &[0, 1, 2, 0, 0x80, 0, 0, 0],
    );
    put(
        "restore_mutated_set",
        "later-log",
        &[0, 2, 5, 0, 0, 0, 0, 0],
    );
    println!(
        "logs {}..={}, image {} bytes",
        set.gen_low(),
        set.gen_high(),
        img.len()
    );
}
