//! [`BackupOptions`]: how a backup-set run streams, and the chunk size it derives from them.

use std::time::Duration;

use ese::{Error, Result};

use super::rate::{cost, Pacer};

/// Chunk size of the streaming reads when nothing asks for another.
pub(crate) const CHUNK: usize = 1 << 20;

/// A throttled run's chunk carries about this much time at its rate, so that progress moves
/// smoothly and a stop or a cancel never waits behind a long sleep.
const SLICE: Duration = Duration::from_millis(100);

/// A database's first read must take its two header pages and the first data page
/// (behaviour.md §2.2); no chunk is smaller.
const MIN_CHUNK_PAGES: usize = 3;

/// How [`Instance::start_backup`](crate::Instance::start_backup) streams. Plain data;
/// `Default` is what [`Instance::backup_to_dir`](crate::Instance::backup_to_dir) uses.
///
/// ```
/// use ese_actors::BackupOptions;
/// let throttled = BackupOptions { max_rate: Some(20 << 20), ..BackupOptions::default() };
/// assert_eq!(throttled.chunk_size, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupOptions {
    /// At most this many bytes per second are streamed into the set (`None`: as fast as the
    /// disks go). Paced after each chunk with an asynchronous sleep, crediting at most one
    /// chunk's time spent elsewhere; the whole run takes at least its bytes divided by this.
    pub max_rate: Option<u64>,
    /// Bytes asked of each read (`read_file`'s `max_len`): a multiple of the page size, at
    /// least 3 pages. `None`: 1 MiB, or with `max_rate` about a tenth of a second's worth
    /// (rounded down to pages, at least 3), so a throttled run reports progress smoothly.
    pub chunk_size: Option<usize>,
    /// Compresses every file of the set with zstd at this level (1 to 22; 3 is zstd's
    /// default), a frame of 8 MiB at a time on the set writer's blocking thread, never on
    /// the actor or an async worker. `None`: plain copies.
    pub compress: Option<i32>,
}

impl BackupOptions {
    /// Checks the options against the instance's page size; the chunk size and the pacer a
    /// run uses.
    pub(crate) fn plan(&self, page_size: u32) -> Result<(usize, Option<Pacer>)> {
        let page = (page_size as usize).max(1);
        let least = MIN_CHUNK_PAGES * page;
        if let Some(level) = self.compress.filter(|l| !(1..=22).contains(l)) {
            return Err(
                Error::InvalidParameter.with_detail(format!("zstd level {level}: give 1 to 22"))
            );
        }
        if self.max_rate == Some(0) {
            return Err(Error::InvalidParameter
                .with_detail("BackupOptions::max_rate is 0: give at least 1 byte per second"));
        }
        let chunk = match (self.chunk_size, self.max_rate) {
            (Some(n), _) if n < least || n % page != 0 => {
                return Err(Error::InvalidParameter.with_detail(format!(
                    "BackupOptions::chunk_size {n} must be a multiple of the page size \
                     ({page}) and at least {least} bytes"
                )))
            }
            (Some(n), _) => n,
            (None, None) => CHUNK.max(least),
            (None, Some(rate)) => {
                let slice = rate.saturating_mul(SLICE.as_millis() as u64) / 1000;
                let slice = usize::try_from(slice).unwrap_or(usize::MAX);
                (slice.min(CHUNK) / page * page).max(least)
            }
        };
        let pacer = self
            .max_rate
            .map(|rate| Pacer::new(rate, cost(chunk as u64, rate)));
        Ok((chunk, pacer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(o: BackupOptions, page: u32) -> Result<usize> {
        o.plan(page).map(|(c, _)| c)
    }

    #[test]
    fn chunks_follow_the_rate_within_bounds() {
        let page = 8192;
        assert_eq!(chunk(BackupOptions::default(), page), Ok(CHUNK));
        let at = |rate| BackupOptions {
            max_rate: Some(rate),
            chunk_size: None,
            compress: None,
        };
        // 100 ms of 1 MB/s, rounded down to pages.
        assert_eq!(chunk(at(1_000_000), page), Ok(98_304));
        assert_eq!(chunk(at(1), page), Ok(3 * 8192));
        assert_eq!(chunk(at(u64::MAX), page), Ok(CHUNK));
        // 32 KiB pages: 3 of them are more than the default chunk's floor.
        assert_eq!(chunk(at(1), 32768), Ok(3 * 32768));
    }

    #[test]
    fn bad_options_are_refused_with_invalid_parameter() {
        let bad = |o: BackupOptions| chunk(o, 4096).unwrap_err().code();
        let rate0 = BackupOptions {
            max_rate: Some(0),
            chunk_size: None,
            compress: None,
        };
        assert_eq!(bad(rate0), -1003);
        for n in [0, 4096, 2 * 4096, 3 * 4096 + 1] {
            let o = BackupOptions {
                max_rate: None,
                chunk_size: Some(n),
                compress: None,
            };
            assert_eq!(bad(o), -1003, "chunk {n}");
        }
        let o = BackupOptions {
            max_rate: Some(1),
            chunk_size: Some(3 * 4096),
            compress: None,
        };
        assert_eq!(chunk(o, 4096), Ok(3 * 4096));
    }
}
