//! Criterion micro-benchmarks of the storage core's hot paths, without the actor and
//! without disk: B+tree put and get through `ese::Core` on the in-memory fault-injecting
//! storage, log record framing, and page checksums.
//!
//! `cargo bench -p ese-bench --features micro --bench micro`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ese::internals::log::{PageImage, Record};
use ese::internals::page::{self, PageKind};
use ese::io::FaultStorage;
use ese::Lsn;
use ese::{Commit, Core, InstanceParams};

fn core_with_rows(rows: u64) -> (Core, ese::SessionId, ese::TableId) {
    let storage: ese::io::StorageRef = Arc::new(FaultStorage::new());
    let params = InstanceParams::new("/mem/inst").page_size(8192);
    let mut core = Core::open(storage, params).expect("open");
    let (db, t) = core
        .create_database("/mem/inst/m.edb".as_ref())
        .expect("db");
    core.wait(t).expect("durable");
    let s = core.begin_session().expect("session");
    let (tbl, t) = core.create_table(db, "t").expect("table");
    core.wait(t).expect("durable");
    let mut i = 0;
    while i < rows {
        core.begin_transaction(s).expect("begin");
        for _ in 0..1000.min(rows - i) {
            core.put(s, tbl, &key(i), &[7u8; 100]).expect("put");
            i += 1;
        }
        core.commit(s, Commit::Lazy).expect("commit");
    }
    (core, s, tbl)
}

fn key(i: u64) -> [u8; 16] {
    let mut k = [b'k'; 16];
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn btree(c: &mut Criterion) {
    let mut g = c.benchmark_group("core");
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    let (mut core, s, tbl) = core_with_rows(10_000);
    let mut i = 0u64;
    g.bench_function("get cached key (10k rows)", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            black_box(core.get(s, tbl, &key(i)).expect("get"))
        })
    });
    let mut n = 1_000_000u64;
    g.bench_function("put + lazy commit (1 row)", |b| {
        b.iter(|| {
            core.begin_transaction(s).expect("begin");
            core.put(s, tbl, &key(n), &[9u8; 100]).expect("put");
            n += 1;
            black_box(core.commit(s, Commit::Lazy).expect("commit"))
        })
    });
    g.finish();
    core.term_clean().expect("term");
}

fn log_and_pages(c: &mut Criterion) {
    let mut g = c.benchmark_group("format");
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    let rec = Record::Pages(vec![PageImage {
        dbid: 1,
        pgno: 42,
        image: vec![0x5A; 8192],
    }]);
    g.throughput(Throughput::Bytes(8192));
    g.bench_function("Record::frame (one 8 KiB page image)", |b| {
        b.iter(|| black_box(rec.frame(Lsn(1 << 32), Lsn(1 << 32))))
    });
    let mut p = page::new_page(8192, 9, PageKind::Leaf);
    p[100..200].fill(3);
    g.bench_function("page::seal (8 KiB)", |b| {
        b.iter(|| page::seal(black_box(&mut p)))
    });
    page::seal(&mut p);
    g.bench_function("page::verify (8 KiB)", |b| {
        b.iter(|| page::verify(black_box(&p), 9).expect("valid"))
    });
    g.bench_function("page::seal + verify, fresh copy (8 KiB)", |b| {
        b.iter_batched(
            || p.clone(),
            |mut q| {
                page::seal(&mut q);
                page::verify(&q, 9).expect("valid")
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, btree, log_and_pages);
criterion_main!(benches);
