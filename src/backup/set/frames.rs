//! Compressed set files: a file is stored as a series of independent zstd frames of
//! [`FRAME`] content bytes each, with the stored offset of every frame in the manifest
//! ([`Stored::frames`]). Independent frames cost a little ratio and buy what a backup on an
//! object store needs: any part of a file can be fetched and decompressed alone (ranged
//! reads, parallel restore, page checks), and compression runs a frame at a time on the
//! writer's blocking thread, never on the actor or an async worker.

use std::path::PathBuf;

use parking_lot::Mutex;

use super::store::{Content, SetFile};
use super::{Stored, FRAME};
use crate::io::{File, FileRef};
use crate::{Error, Result};

/// The name compressed files carry in the manifest.
pub const ZSTD: &str = "zstd";

/// A set file that compresses what is appended, a frame at a time, into another set file.
pub struct Compressing {
    inner: Box<dyn SetFile>,
    zstd: zstd::bulk::Compressor<'static>,
    pending: Vec<u8>,
    frames: Vec<u64>,
    stored: u64,
    stored_crc: u32,
}

impl Compressing {
    /// Compresses at zstd `level` into `inner`. Each frame carries zstd's own checksum, so
    /// a damaged frame fails to decompress rather than giving wrong bytes.
    pub fn new(inner: Box<dyn SetFile>, level: i32) -> Result<Compressing> {
        let failed = |e: std::io::Error| {
            Error::InvalidParameter.with_detail(format!("zstd level {level}: {e}"))
        };
        let mut zstd = zstd::bulk::Compressor::new(level).map_err(failed)?;
        zstd.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .map_err(failed)?;
        Ok(Compressing {
            inner,
            zstd,
            pending: Vec::with_capacity(FRAME as usize),
            frames: Vec::new(),
            stored: 0,
            stored_crc: 0,
        })
    }

    fn flush_frame(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let packed = self.zstd.compress(&self.pending).map_err(|e| {
            Error::InternalError.with_detail(format!("zstd compression failed: {e}"))
        })?;
        self.inner.append(&packed)?;
        self.frames.push(self.stored);
        self.stored += packed.len() as u64;
        self.stored_crc = crc32c::crc32c_append(self.stored_crc, &packed);
        self.pending.clear();
        Ok(())
    }
}

impl SetFile for Compressing {
    fn append(&mut self, mut chunk: &[u8]) -> Result<()> {
        while !chunk.is_empty() {
            let room = FRAME as usize - self.pending.len();
            let take = room.min(chunk.len());
            self.pending.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.pending.len() == FRAME as usize {
                self.flush_frame()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, _: Content) -> Result<Option<Stored>> {
        self.flush_frame()?;
        let stored = Content {
            len: self.stored,
            crc32c: self.stored_crc,
        };
        let (size, frames) = (self.stored, std::mem::take(&mut self.frames));
        let inner = self.inner;
        let held = inner.finish(stored)?;
        Ok(Some(Stored {
            size,
            compression: Some(ZSTD.into()),
            frames,
            set: held.and_then(|h| h.set),
        }))
    }
}

/// A compressed set file read back as its content: each read fetches the frames it needs
/// from the stored file and decompresses them. The last frame read is kept, so sequential
/// reads of any size decompress each frame once.
#[derive(Debug)]
pub struct Decompressing {
    stored: FileRef,
    stored_len: u64,
    len: u64,
    frames: Vec<u64>,
    /// What a frame that does not decompress to its size is (the file's own damage error).
    damaged: Error,
    shown: PathBuf,
    cache: Mutex<Option<(usize, Vec<u8>)>>,
}

impl Decompressing {
    /// The content (`len` bytes) of the compressed file `file`, kept as `stored` says.
    /// `damaged` is the error for a frame that is not what the manifest says.
    ///
    /// # Errors
    ///
    /// `damaged` when the manifest's frames cannot describe `len` bytes of content (not
    /// starting at 0, not increasing, not one per [`FRAME`], one larger than zstd can make
    /// of a frame) or the stored object is not the size the manifest gives: nothing is
    /// allocated from a hostile manifest's numbers.
    pub fn new(
        file: FileRef,
        stored: &Stored,
        len: u64,
        damaged: Error,
        shown: PathBuf,
    ) -> Result<Decompressing> {
        let bad = |what: String| {
            damaged
                .clone()
                .with_detail(format!("{}: {what}", shown.display()))
        };
        let frames = &stored.frames;
        if frames.len() as u64 != len.div_ceil(FRAME) {
            return Err(bad(format!(
                "{} compressed frames for {len} bytes ({} expected)",
                frames.len(),
                len.div_ceil(FRAME)
            )));
        }
        let bound = zstd::zstd_safe::compress_bound(FRAME as usize) as u64;
        let mut ends = frames.iter().skip(1).copied().chain([stored.size]);
        let mut at = 0;
        for (i, &start) in frames.iter().enumerate() {
            let end = ends.next().unwrap_or(stored.size);
            if start != at || end <= start || end - start > bound {
                return Err(bad(format!(
                    "compressed frame {i} is not where a frame can be"
                )));
            }
            at = end;
        }
        if at != stored.size {
            return Err(bad(format!(
                "the frames end at {at}, the object is {} bytes",
                stored.size
            )));
        }
        let found = file.len()?;
        if found != stored.size {
            return Err(bad(format!(
                "{found} bytes stored, {} expected",
                stored.size
            )));
        }
        Ok(Decompressing {
            stored: file,
            stored_len: stored.size,
            len,
            frames: stored.frames.clone(),
            damaged,
            shown,
            cache: Mutex::new(None),
        })
    }

    fn bad(&self, what: String) -> Error {
        self.damaged
            .clone()
            .with_detail(format!("{}: {what}", self.shown.display()))
    }

    /// Frame `i`, decompressed and checked against the size it must have.
    fn frame(&self, i: usize) -> Result<Vec<u8>> {
        let start = self.frames[i];
        let end = self.frames.get(i + 1).copied().unwrap_or(self.stored_len);
        if end < start || end > self.stored_len {
            return Err(self.bad(format!("frame {i} lies outside the stored object")));
        }
        let mut packed = vec![0u8; (end - start) as usize];
        self.stored
            .read_exact_at(&mut packed, start)
            .map_err(|e| match e.clone().plain() {
                Error::FileIOBeyondEOF => self.bad(format!("cut short before frame {i} ends")),
                _ => e,
            })?;
        let want = FRAME.min(self.len - i as u64 * FRAME) as usize;
        let out = zstd::bulk::decompress(&packed, FRAME as usize)
            .map_err(|e| self.bad(format!("frame {i} does not decompress: {e}")))?;
        if out.len() != want {
            return Err(self.bad(format!(
                "frame {i} holds {} bytes, {want} expected",
                out.len()
            )));
        }
        Ok(out)
    }
}

impl File for Decompressing {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let i = (offset / FRAME) as usize;
        if i >= self.frames.len() {
            return Err(self.bad(format!("no frame holds byte {offset}")));
        }
        let mut cache = self.cache.lock();
        if cache.as_ref().is_none_or(|(at, _)| *at != i) {
            *cache = Some((i, self.frame(i)?));
        }
        let (_, data) = cache.as_ref().ok_or(Error::InternalError)?;
        let from = (offset - i as u64 * FRAME) as usize;
        let n = buf.len().min(data.len() - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }

    fn write_at(&self, _: &[u8], _: u64) -> Result<()> {
        Err(Error::FileAccessDenied.with_detail("a compressed backup file is read-only"))
    }

    fn will_read(&self) {
        self.stored.will_read();
    }

    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        Ok(self.len)
    }

    fn set_len(&self, _: u64) -> Result<()> {
        Err(Error::FileAccessDenied.with_detail("a compressed backup file is read-only"))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::io::{os, OpenMode};

    struct Sink(FileRef, u64);

    impl SetFile for Sink {
        fn append(&mut self, chunk: &[u8]) -> Result<()> {
            self.0.write_at(chunk, self.1)?;
            self.1 += chunk.len() as u64;
            Ok(())
        }
        fn finish(self: Box<Self>, _: Content) -> Result<Option<Stored>> {
            Ok(None)
        }
    }

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|i| ((i / 7) % 251) as u8).collect()
    }

    fn round_trip(len: usize) -> (Vec<u8>, Stored, FileRef) {
        let dir = tempfile::tempdir().unwrap();
        let f = os()
            .open(&dir.path().join("z"), OpenMode::CreateNew)
            .unwrap();
        let data = content(len);
        let mut z = Box::new(Compressing::new(Box::new(Sink(f.clone(), 0)), 1).unwrap());
        for c in data.chunks(1_000_003) {
            z.append(c).unwrap();
        }
        let c = Content {
            len: len as u64,
            crc32c: 0,
        };
        let stored = z.finish(c).unwrap().unwrap();
        std::mem::forget(dir);
        (data, stored, f)
    }

    #[test]
    fn frames_read_back_at_any_offset() {
        let len = 2 * FRAME as usize + 12_345;
        let (data, stored, f) = round_trip(len);
        assert_eq!(stored.frames.len(), 3);
        assert_eq!(stored.size, f.len().unwrap());
        assert!(
            stored.size < len as u64 / 4,
            "compressible content compresses"
        );
        let r =
            Decompressing::new(f, &stored, len as u64, Error::LogFileCorrupt, "z".into()).unwrap();
        for at in [0, 1, FRAME - 3, FRAME, 2 * FRAME + 12_000] {
            let mut buf = vec![0u8; 5000.min(len - at as usize)];
            r.read_exact_at(&mut buf, at).unwrap();
            assert_eq!(buf, data[at as usize..at as usize + buf.len()]);
        }
        let mut all = vec![0u8; len];
        r.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(all, data);
    }

    #[test]
    fn a_damaged_frame_is_the_files_own_error() {
        let len = FRAME as usize + 10;
        let (_, stored, f) = round_trip(len);
        let at = stored.frames[1] + 3;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_at(&[b[0] ^ 0x40], at).unwrap();
        let r = Decompressing::new(
            Arc::clone(&f),
            &stored,
            len as u64,
            Error::LogFileCorrupt,
            "z".into(),
        )
        .unwrap();
        let mut buf = vec![0u8; 10];
        let e = r.read_exact_at(&mut buf, FRAME).unwrap_err();
        assert_eq!(e.code(), Error::LogFileCorrupt.code(), "{e}");
        let mut head = vec![0u8; 10];
        r.read_exact_at(&mut head, 0).unwrap();
    }

    #[test]
    fn hostile_frames_are_refused_before_anything_is_allocated() {
        let len = FRAME as usize + 10;
        let (_, stored, f) = round_trip(len);
        let open = |s: &Stored, len: u64| {
            Decompressing::new(f.clone(), s, len, Error::LogFileCorrupt, "z".into())
                .map(|_| ())
                .unwrap_err()
                .code()
        };
        let huge = Stored {
            size: 1 << 46,
            frames: vec![0],
            ..stored.clone()
        };
        assert_eq!(open(&huge, 10), -501);
        let backwards = Stored {
            frames: vec![stored.frames[1], 0],
            ..stored.clone()
        };
        assert_eq!(open(&backwards, len as u64), -501);
        assert_eq!(open(&stored, 1 << 40), -501, "more content than frames");
        let short = Stored {
            size: stored.size - 1,
            ..stored.clone()
        };
        assert_eq!(
            open(&short, len as u64),
            -501,
            "object larger than the manifest says"
        );
    }
}
