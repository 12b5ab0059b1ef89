//! `read_file_chunk`: every chunk comes with its CRC-32C. For a database image the engine
//! puts the sum together from the page checksums its verification computed (header copies,
//! trailer and bytes past the last page are summed directly); a log chunk is summed whole.
//! Each sum must be the chunk's, whatever the chunk size, while writers change pages.

use crate::support;

use ese_actors::{BackupBegin, BackupEnd, BackupFile, Engine, Instance};
use support::actor::*;

/// Reads an open file to its end with `read_file_chunk`, checking every chunk's sum;
/// answers the file and the number of chunks.
async fn read_summed(inst: &Instance, f: BackupFile, chunk: usize) -> (Vec<u8>, usize) {
    let (mut out, mut chunks) = (Vec::new(), 0);
    loop {
        let c = inst.read_file_chunk(f, chunk).await.unwrap();
        assert_eq!(
            c.crc32c,
            crc32c::crc32c(&c.bytes),
            "chunk {chunks} at {} ({} bytes)",
            out.len(),
            c.bytes.len()
        );
        if c.bytes.is_empty() {
            return (out, chunks);
        }
        out.extend_from_slice(&c.bytes);
        chunks += 1;
    }
}

#[tokio::test]
async fn every_chunk_comes_with_its_own_sum() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new();
    let (inst, t, db) = instance_with_data(&engine, "i", dir.path(), 2_000).await;
    let writer = spawn_writer(&inst, t);
    // Chunk sizes that put the header copies, the trailer and page runs at every place in
    // a chunk, up to one chunk for the whole image.
    for pages in [3, 4, 7, 64, 4096] {
        inst.begin_external_backup(BackupBegin::empty())
            .await
            .unwrap();
        let (f, size) = inst.open_file(&db).await.unwrap();
        let (image, chunks) = read_summed(&inst, f, pages * PAGE).await;
        assert_eq!(image.len() as u64, size);
        assert!(chunks >= 1);
        inst.close_file(f).await.unwrap();
        for p in inst.get_log_info().await.unwrap().files {
            let (f, size) = inst.open_file(&p).await.unwrap();
            let (log, _) = read_summed(&inst, f, pages * PAGE).await;
            assert_eq!(log.len() as u64, size, "{}", p.display());
            inst.close_file(f).await.unwrap();
        }
        inst.end_external_backup(BackupEnd::NORMAL).await.unwrap();
    }
    writer.stop().await;
    inst.term(ese_actors::Term::empty()).await.unwrap();
}
