//! Embedding `ese` in a tokio service: an instance, a table, a durable transaction, an online
//! backup set, and a check of the set. `cargo run --example embed`
use ese_actors::{verify_backup_set, BackupKind, Commit, Engine, InstanceParams, Term};

#[tokio::main]
async fn main() -> ese_actors::Result<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::new();
    let inst = engine
        .create_instance("orders", InstanceParams::new(dir.path().join("inst")))
        .await?;
    inst.init().await?; // soft recovery, then the instance runs
    let db = inst
        .create_database(dir.path().join("inst/orders.edb"))
        .await?;
    let orders = inst.create_table(db, "orders").await?;
    let mut tx = inst.transaction().await?;
    tx.put(orders, b"order-1", b"2 widgets").await?;
    tx.commit(Commit::Durable).await?; // answered once the log record is fsync'd
    let set = inst
        .backup_to_dir(dir.path().join("backup"), BackupKind::Full)
        .await?;
    println!(
        "backup {} holds logs {}..={}",
        set.id, set.gen_low, set.gen_high
    );
    println!(
        "verified {} pages",
        verify_backup_set(dir.path().join("backup"))?.pages
    );
    inst.term(Term::empty()).await
}
