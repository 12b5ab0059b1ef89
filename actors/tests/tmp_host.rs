mod support {
    pub mod actor {
        pub fn params(dir: &std::path::Path) -> ese_actors::InstanceParams {
            ese_actors::InstanceParams::new(dir)
                .log_file_size(128 * 1024)
                .page_size(4096)
                .cache_pages(256)
        }
        pub fn code<T: std::fmt::Debug>(r: ese::Result<T>) -> i32 {
            r.expect_err("expected an error").code()
        }
    }
}
#[path = "../../tests/instance/open_or_create.rs"]
mod open_or_create;
#[path = "../../tests/instance/scans.rs"]
mod scans;
#[path = "../../tests/instance/transactions.rs"]
mod transactions;
#[path = "../../tests/instance/write_batch.rs"]
mod write_batch;
