//! The files of a remote backup and what makes a cut download resumable.
//!
//! The engine streams a file forward only, and opening a file again is not part of ESE's
//! sequence, so the server keeps, per file, the last bytes it read from the engine (its
//! *window*, a bounded number of bytes). A `Range: bytes=N-` request is served from the window
//! for what the server read already, then from the engine. A start older than the window can
//! no longer be served (416).

use std::collections::VecDeque;
use std::path::PathBuf;

use bytes::Bytes;
use ese_actors::ese::crc::Shift;
use ese_actors::{BackupFile, FileChunk};
use serde::Serialize;

/// What a file of the backup is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// An attached database's image (header twice, pages, trailer).
    Database,
    /// An archived log file.
    Log,
}

/// The bytes most recently read from the engine for one file: `[start, end)`.
#[derive(Debug, Clone, Default)]
pub struct Window {
    start: u64,
    end: u64,
    chunks: VecDeque<Bytes>,
    cap: u64,
}

impl Window {
    /// An empty window at offset 0 keeping at least `cap` bytes.
    pub fn new(cap: u64) -> Window {
        Window {
            cap,
            ..Window::default()
        }
    }

    /// Where the engine's stream stands: the next byte it will give.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The oldest offset still kept.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Appends the engine's next chunk, dropping whole old chunks beyond the capacity (the
    /// newest chunk is always kept).
    pub fn push(&mut self, chunk: Bytes) {
        self.end += chunk.len() as u64;
        self.chunks.push_back(chunk);
        while self.end - self.start > self.cap && self.chunks.len() > 1 {
            if let Some(old) = self.chunks.pop_front() {
                self.start += old.len() as u64;
            }
        }
    }

    /// The kept bytes from `from` to the end, or `None` if `from` is outside `[start, end]`.
    pub fn from(&self, from: u64) -> Option<Vec<Bytes>> {
        if from < self.start || from > self.end {
            return None;
        }
        let mut skip = from - self.start;
        let mut out = Vec::new();
        for c in &self.chunks {
            let len = c.len() as u64;
            if skip >= len {
                skip -= len;
                continue;
            }
            out.push(c.slice(skip as usize..));
            skip = 0;
        }
        Some(out)
    }

    /// Forgets the kept bytes (the client moved on to another file).
    pub fn release(&mut self) {
        self.start = self.end;
        self.chunks.clear();
    }
}

/// One file of the backup, as the server tracks it.
#[derive(Debug)]
pub struct FileEntry {
    /// The file's name, how a client may address it (with its index).
    pub name: String,
    /// Its path on the server: never taken from a client.
    pub path: PathBuf,
    /// Database or log.
    pub kind: FileKind,
    /// The engine's handle while open.
    pub handle: Option<BackupFile>,
    /// The streamed size, once opened.
    pub size: Option<u64>,
    /// The last bytes read from the engine.
    pub window: Window,
    /// CRC-32C of every byte read from the engine so far, in order.
    pub crc: u32,
    /// The shift past the last chunk's length, kept: chunks but the last are all one size.
    shift: Shift,
    /// Read to its end and closed.
    pub complete: bool,
    /// Bumped by every GET of the file: an older response still streaming stops.
    pub epoch: u64,
    /// The engine gave up on this file alone (`ReadVerifyFailure`: it closed the handle and
    /// the backup goes on): every later GET of it gets this error.
    pub failed: Option<ese_actors::Error>,
}

impl FileEntry {
    /// A file not opened yet.
    pub fn new(path: PathBuf, kind: FileKind, window: u64) -> FileEntry {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        FileEntry {
            name,
            path,
            kind,
            handle: None,
            size: None,
            window: Window::new(window),
            crc: 0,
            shift: Shift::new(0),
            complete: false,
            epoch: 0,
            failed: None,
        }
    }

    /// Records an engine error of a read: unless it may pass, the file's stream ends with it
    /// for good, and every later GET of the file gets it at once. Retrying could not help: for
    /// a failed disk read (`ReadVerifyFailure` -1018, `DiskIO` -1022) the engine cancelled
    /// this file's copy and dropped its handle (the backup goes on), a refused read is
    /// refused again, and after a backup-wide error (`BackupAbortByServer`, `stop_service`'s)
    /// nothing more is read anyway. A client that resumed instead would be cut at the same
    /// byte for ever. The exceptions are the instance's gate answering while a `term` or an
    /// `init` runs (-1000, -1029): the read never reached the backup, and a term can yet
    /// fail (BackupInProgress) with the backup going on, so a later GET reads again. Answers
    /// the handle, for the caller to close where the engine still holds it.
    pub fn read_failed(&mut self, e: &ese_actors::Error) -> Option<BackupFile> {
        if ese_actors::gate_answer_may_pass(e) {
            return None;
        }
        self.failed = Some(e.clone());
        self.handle.take()
    }

    /// Records the engine's next chunk: in the window, and in the file's sum, which the
    /// chunk's own sum extends without a pass over its bytes.
    pub fn took(&mut self, chunk: &FileChunk) {
        let len = chunk.bytes.len();
        if self.shift.len() != len {
            self.shift = Shift::new(len);
        }
        self.crc = self.shift.combine(self.crc, chunk.crc32c);
        self.window.push(chunk.bytes.clone());
    }
}

/// The files of a backup in the order the server listed them; clients address them by index
/// or exact name, never by path.
#[derive(Debug, Default)]
pub struct FileTable {
    files: Vec<FileEntry>,
}

impl FileTable {
    /// Adds the files not listed yet (a list may be asked for again), answering their indexes.
    pub fn add(&mut self, paths: &[PathBuf], kind: FileKind, window: u64) -> Vec<usize> {
        paths
            .iter()
            .map(|p| match self.files.iter().position(|f| &f.path == p) {
                Some(i) => i,
                None => {
                    self.files.push(FileEntry::new(p.clone(), kind, window));
                    self.files.len() - 1
                }
            })
            .collect()
    }

    /// The file a client names: a decimal index, or a name exactly as listed. Anything else
    /// (paths, `..`, separators) names nothing.
    pub fn find(&self, id: &str) -> Option<usize> {
        if let Ok(i) = id.parse::<usize>() {
            if id.bytes().all(|b| b.is_ascii_digit()) && i < self.files.len() {
                return Some(i);
            }
        }
        self.files
            .iter()
            .position(|f| !f.name.is_empty() && f.name == id)
    }

    /// The file at an index from [`FileTable::find`] or [`FileTable::add`].
    pub fn get(&self, i: usize) -> Option<&FileEntry> {
        self.files.get(i)
    }

    /// The file at an index, to change.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut FileEntry> {
        self.files.get_mut(i)
    }

    /// Every file, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &FileEntry)> {
        self.files.iter().enumerate()
    }

    /// Drops the kept bytes of every complete file but `keep`.
    pub fn release_others(&mut self, keep: usize) {
        for (i, f) in self.files.iter_mut().enumerate() {
            if i != keep && f.complete {
                f.window.release();
            }
        }
    }

    /// Every open engine handle (to close them).
    pub fn open_handles(&self) -> Vec<BackupFile> {
        self.files.iter().filter_map(|f| f.handle).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    fn flat(v: Vec<Bytes>) -> Vec<u8> {
        v.into_iter().flat_map(|c| c.to_vec()).collect()
    }

    #[test]
    fn the_window_serves_from_any_kept_offset() {
        let mut w = Window::new(100);
        w.push(b(1, 10));
        w.push(b(2, 10));
        assert_eq!(flat(w.from(5).unwrap()), [vec![1; 5], vec![2; 10]].concat());
        assert_eq!(flat(w.from(20).unwrap()), Vec::<u8>::new());
        assert!(w.from(21).is_none());
    }

    #[test]
    fn the_window_drops_old_chunks_beyond_its_capacity() {
        let mut w = Window::new(15);
        w.push(b(1, 10));
        w.push(b(2, 10));
        assert_eq!(w.start(), 10);
        assert!(w.from(9).is_none());
        assert_eq!(flat(w.from(12).unwrap()), vec![2; 8]);
        // A chunk larger than the capacity is still kept whole.
        w.push(b(3, 40));
        assert_eq!((w.start(), w.end()), (20, 60));
    }

    #[test]
    fn a_failed_read_ends_the_file_for_good() {
        use ese_actors::Error;
        for e in [
            Error::ReadVerifyFailure.with_detail("page 9"),
            Error::from_code(-1022).unwrap(),
            Error::InvalidParameter,
        ] {
            // (An engine handle cannot be made here: the close is tested over HTTP.)
            let mut f = FileEntry::new(PathBuf::from("/srv/db/a.edb"), FileKind::Database, 1);
            assert_eq!(f.read_failed(&e), None);
            assert_eq!(f.failed.as_ref().map(Error::code), Some(e.code()));
        }
        // A term under way may fail and leave the backup running: the file is read again.
        let mut f = FileEntry::new(PathBuf::from("/srv/db/a.edb"), FileKind::Database, 1);
        assert_eq!(f.read_failed(&Error::TermInProgress), None);
        assert!(f.failed.is_none());
    }

    #[test]
    fn files_are_found_by_index_or_exact_name_only() {
        let mut t = FileTable::default();
        t.add(&[PathBuf::from("/srv/db/a.edb")], FileKind::Database, 1);
        t.add(
            &[PathBuf::from("/srv/log/edb00000001.log")],
            FileKind::Log,
            1,
        );
        assert_eq!(t.find("0"), Some(0));
        assert_eq!(t.find("edb00000001.log"), Some(1));
        for hostile in [
            "2",
            "+1",
            "01x",
            "../a.edb",
            "/srv/db/a.edb",
            "db/a.edb",
            "a.edb/",
            "",
            "A.EDB",
        ] {
            assert_eq!(t.find(hostile), None, "{hostile}");
        }
        // Adding a listed path again keeps its index.
        assert_eq!(
            t.add(&[PathBuf::from("/srv/db/a.edb")], FileKind::Database, 1),
            [0]
        );
    }
}
