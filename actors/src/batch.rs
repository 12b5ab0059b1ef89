//! `WriteBatch`: puts and deletes gathered by the host and committed with one message.

use ese::TableId;

/// Puts and deletes over one or more tables, committed together by [`Instance::write`] as one
/// transaction of its own, with one message and one durability choice, whatever the number
/// of rows. Either every row is applied or none is.
///
/// A later operation on the same key of the same table replaces an earlier one in the batch.
/// A delete of a key that does not exist is no error (the batch does not read first, unlike
/// [`Session::delete`](crate::Session::delete)).
///
/// ```no_run
/// # async fn f(inst: ese_actors::Instance, t: ese_actors::TableId) -> ese_actors::Result<()> {
/// use ese_actors::{Commit, WriteBatch};
///
/// let mut batch = WriteBatch::new();
/// for i in 0..1000u32 {
///     batch.put(t, &i.to_be_bytes(), b"value");
/// }
/// batch.delete(t, b"old");
/// inst.write(batch, Commit::Durable).await?;
/// # Ok(()) }
/// ```
///
/// [`Instance::write`]: crate::Instance::write
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    rows: Vec<(TableId, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// An empty batch with room for `rows` operations.
    pub fn with_capacity(rows: usize) -> WriteBatch {
        WriteBatch {
            rows: Vec::with_capacity(rows),
        }
    }

    /// Inserts or replaces the row under `key`.
    pub fn put(&mut self, table: TableId, key: &[u8], value: &[u8]) -> &mut WriteBatch {
        self.rows.push((table, key.to_vec(), Some(value.to_vec())));
        self
    }

    /// Deletes the row under `key`, if there is one.
    pub fn delete(&mut self, table: TableId, key: &[u8]) -> &mut WriteBatch {
        self.rows.push((table, key.to_vec(), None));
        self
    }

    /// Operations in the batch.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The operations in order: `(table, key, Some(value))` for a put, `None` for a delete.
    pub(crate) fn into_rows(self) -> Vec<(TableId, Vec<u8>, Option<Vec<u8>>)> {
        self.rows
    }
}
