//! The venue's command journal (event sourcing): every accepted command is
//! appended to an append-only file before it is applied and acknowledged,
//! and replaying the file into a fresh [`Venue`] rebuilds the same books,
//! the same orders and the same event stream.
//!
//! # File format
//!
//! A 16-byte header — magic `PLXJRNL\0`, format version (u32 LE, 1), 4
//! reserved zero bytes — then records, each:
//!
//! | bytes | field                                                              |
//! |-------|--------------------------------------------------------------------|
//! | 4     | payload length (u32 LE, 1 to [`MAX_PAYLOAD`])                        |
//! | 4     | CRC-32 (IEEE, `crc32fast`) of the length, sequence, time and payload |
//! | 8     | sequence number (u64 LE): 1, 2, 3... with no gaps                  |
//! | 8     | wall time of the append, nanoseconds since the Unix epoch (u64 LE) |
//! | n     | the command (see the `codec` table: a tag byte, then LE fields)    |
//!
//! # Durability
//!
//! [`Sync::Always`] calls `fdatasync` before an append returns (survives
//! power loss); [`Journal::append_batch`] writes many records with one
//! `write` and one sync (group commit). [`Sync::Os`] only `write(2)`s: the
//! data is in the kernel when the append returns, so it survives the
//! process being killed (`kill -9`), not the machine losing power.
//!
//! # Recovery
//!
//! Opening scans every record and checks lengths, checksums and sequence
//! numbers. A record cut short by a crash (a torn tail), or a bad record
//! with nothing valid after it, is cut off (the file is truncated there and
//! [`Opened::truncated_bytes`] says how much went). A bad record *followed
//! by a valid one* is corruption of acknowledged data, not a torn write:
//! opening fails with [`JournalError::Corrupt`] unless
//! [`OpenOptions::truncate_corrupt`] says to cut there anyway. A record
//! whose checksum is fine but whose command this build cannot decode (a
//! newer format) fails with [`JournalError::Decode`] and is never cut.
//!
//! # Determinism
//!
//! The engine reads no clock and no randomness: its only inputs are the
//! commands, in journal order, so replay is exact. The time in each record
//! is for audit and is not given to the engine; a future time-driven
//! feature (order expiry, auctions) must enter as a journaled command
//! carrying its time, never by reading the clock during apply.

mod codec;

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use codec::DecodeError;

use crate::engine::{Command, Event, EventSink, RejectReason, Venue};

/// The journal's encoding of one command (the record payload), for
/// journals kept elsewhere (cluster mode keeps them in PostgreSQL).
pub fn encode_command(cmd: &Command, buf: &mut Vec<u8>) {
    codec::encode(cmd, buf);
}

/// The command a record payload holds.
///
/// # Errors
/// What is wrong with the payload.
pub fn decode_command(bytes: &[u8]) -> Result<Command, DecodeError> {
    codec::decode(bytes)
}

/// The first 8 bytes of a journal file.
pub const MAGIC: [u8; 8] = *b"PLXJRNL\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
/// The largest payload a record may claim (anything larger is damage).
pub const MAX_PAYLOAD: u32 = 64 * 1024;

const FILE_HEADER_LEN: u64 = 16;
const RECORD_HEADER_LEN: usize = 24;

/// When an append is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sync {
    /// `fdatasync` before acknowledging: survives power loss.
    Always,
    /// `write(2)` only: survives the process dying, not the machine.
    Os,
}

/// How to open a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// Durability of appends.
    pub sync: Sync,
    /// Cut the file at a corrupt record even when valid records follow it
    /// (they are lost). Off by default: such a file is refused.
    pub truncate_corrupt: bool,
}

impl OpenOptions {
    /// The given durability; corruption refused.
    #[must_use]
    pub const fn new(sync: Sync) -> Self {
        Self { sync, truncate_corrupt: false }
    }
}

/// One journaled command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its sequence number (1, 2, 3...).
    pub seq: u64,
    /// Wall time of the append, ns since the Unix epoch (audit only).
    pub time_ns: u64,
    /// The command.
    pub command: Command,
}

/// What opening found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Every valid record, in order, for replay.
    pub records: Vec<Record>,
    /// Bytes cut off the end (a torn tail or, if allowed, corruption).
    pub truncated_bytes: u64,
    /// The file did not exist (or was empty) and was created.
    pub created: bool,
}

/// What opening found, when the records were streamed
/// ([`Journal::open_each`], [`JournaledVenue::open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// Valid records read (and replayed, for a journaled venue).
    pub records: u64,
    /// Bytes cut off the end (a torn tail or, if allowed, corruption).
    pub truncated_bytes: u64,
    /// The file did not exist (or was empty) and was created.
    pub created: bool,
}

/// Why the journal could not be opened, appended to or replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The file system failed.
    #[error("journal i/o failed: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with the journal magic.
    #[error("{} is not a journal", path.display())]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by a build with another format version.
    #[error("journal format version {version} is not supported (this build reads {VERSION})")]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// A bad record with valid records after it.
    #[error(
        "record {seq} at byte {offset} is corrupt and valid records follow it (open with truncate_corrupt to cut there)"
    )]
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
        /// The sequence number it should have had.
        seq: u64,
    },
    /// A record with a good checksum whose command cannot be decoded.
    #[error("record {seq} at byte {offset} cannot be decoded: {source}")]
    Decode {
        /// Its sequence number.
        seq: u64,
        /// Where it starts.
        offset: u64,
        /// What is wrong.
        #[source]
        source: DecodeError,
    },
    /// Another open journal (this process or another) holds the file's lock.
    #[error("{} is locked by another writer", path.display())]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// A write or sync failed earlier; the journal (or journaled venue)
    /// refuses everything until it is reopened.
    #[error("a journal write or sync failed earlier; reopen the journal")]
    Poisoned,
    /// Replay met a command the venue refused: the journal does not belong
    /// to this venue state or engine version.
    #[error("replaying record {seq} was refused: {reason}")]
    ReplayRejected {
        /// The record.
        seq: u64,
        /// The venue's reason.
        reason: RejectReason,
    },
}

/// An open journal, positioned at its end for appends.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    sync: Sync,
    next_seq: u64,
    /// Bytes of valid data (header included): where the next record goes.
    len: u64,
    /// Records staged for the next write.
    buf: Vec<u8>,
    staged: u64,
    stage_time: u64,
    poisoned: bool,
}

/// How one record read ended.
enum Read1 {
    /// A good record.
    Good { seq: u64, time_ns: u64, len: usize },
    /// Clean end of file at a record boundary.
    End,
    /// The file ends inside the record.
    Short,
    /// A bad length (`None`) or a bad checksum (`Some(len)`).
    Bad(Option<usize>),
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// The checksum of a record: its header without the checksum, then the payload.
fn record_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[0..4]);
    h.update(&header[8..RECORD_HEADER_LEN]);
    h.update(payload);
    h.finalize()
}

/// Reads one record into `payload`.
fn read_record(r: &mut impl Read, payload: &mut Vec<u8>) -> io::Result<Read1> {
    let mut header = [0u8; RECORD_HEADER_LEN];
    match read_full(r, &mut header)? {
        0 => return Ok(Read1::End),
        n if n < RECORD_HEADER_LEN => return Ok(Read1::Short),
        _ => {}
    }
    let len = le_u32(&header[0..4]);
    if len == 0 || len > MAX_PAYLOAD {
        return Ok(Read1::Bad(None));
    }
    let len = len as usize;
    payload.resize(len, 0);
    if read_full(r, payload)? < len {
        return Ok(Read1::Short);
    }
    if record_crc(&header, payload) != le_u32(&header[4..8]) {
        return Ok(Read1::Bad(Some(len)));
    }
    Ok(Read1::Good { seq: le_u64(&header[8..16]), time_ns: le_u64(&header[16..24]), len })
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn file_header() -> [u8; FILE_HEADER_LEN as usize] {
    let mut h = [0u8; FILE_HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Syncs a file's directory so that its creation survives power loss.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    File::open(parent)?.sync_all()
}

impl Journal {
    /// Opens (creating if missing) a journal, recovers it (see the module
    /// docs) and returns its records for replay.
    ///
    /// # Errors
    /// I/O, a file that is not a journal, corruption with valid records
    /// after it, or an undecodable record.
    pub fn open(path: impl AsRef<Path>, sync: Sync) -> Result<(Self, Opened), JournalError> {
        Self::open_with(path, OpenOptions::new(sync))
    }

    /// [`Self::open`] with options.
    ///
    /// # Errors
    /// As [`Self::open`].
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<(Self, Opened), JournalError> {
        let mut records = Vec::new();
        let (journal, recovery) = Self::open_each(path, options, |record| {
            records.push(record);
            Ok(())
        })?;
        Ok((journal, Opened { records, truncated_bytes: recovery.truncated_bytes, created: recovery.created }))
    }

    /// Opens and recovers like [`Self::open_with`], handing each valid
    /// record to `each` as it is read instead of collecting them (a large
    /// journal is never held in memory). If `each` fails, opening stops
    /// with its error and the file is left as it was.
    ///
    /// The file is locked (`flock`, exclusive) for as long as the journal
    /// is open, so a second writer is refused.
    ///
    /// # Errors
    /// As [`Self::open`], [`JournalError::Locked`], or `each`'s error.
    pub fn open_each<F>(
        path: impl AsRef<Path>,
        options: OpenOptions,
        mut each: F,
    ) -> Result<(Self, Recovery), JournalError>
    where
        F: FnMut(Record) -> Result<(), JournalError>,
    {
        let path = path.as_ref().to_path_buf();
        let mut file = fs::OpenOptions::new().read(true).append(true).create(true).open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(JournalError::Locked { path }),
            Err(fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let file_len = file.metadata()?.len();
        let header = file_header();
        let mut created = false;
        if file_len < FILE_HEADER_LEN {
            // New, or a header cut by a crash while the file was created.
            let mut existing = Vec::new();
            file.read_to_end(&mut existing)?;
            if !header.starts_with(&existing) {
                return Err(JournalError::NotAJournal { path });
            }
            file.set_len(0)?;
            file.write_all(&header)?;
            file.sync_all()?;
            sync_parent(&path)?;
            created = true;
        } else {
            let mut found = [0u8; FILE_HEADER_LEN as usize];
            file.seek(SeekFrom::Start(0))?;
            file.read_exact(&mut found)?;
            if found[..8] != MAGIC {
                return Err(JournalError::NotAJournal { path });
            }
            let version = le_u32(&found[8..12]);
            if version != VERSION {
                return Err(JournalError::UnsupportedVersion { version });
            }
        }

        let mut count = 0u64;
        let mut offset = FILE_HEADER_LEN;
        let mut payload = Vec::new();
        let mut cut_at = None;
        {
            let mut reader = BufReader::with_capacity(1 << 20, &file);
            reader.seek(SeekFrom::Start(FILE_HEADER_LEN))?;
            loop {
                let expected = count + 1;
                let bad_len = match read_record(&mut reader, &mut payload)? {
                    Read1::End => break,
                    Read1::Short => {
                        cut_at = Some(offset);
                        break;
                    }
                    Read1::Good { seq, time_ns, len } if seq == expected => {
                        let command =
                            codec::decode(&payload).map_err(|source| JournalError::Decode { seq, offset, source })?;
                        each(Record { seq, time_ns, command })?;
                        count += 1;
                        offset += (RECORD_HEADER_LEN + len) as u64;
                        continue;
                    }
                    Read1::Good { len, .. } | Read1::Bad(Some(len)) => Some(len),
                    Read1::Bad(None) => None,
                };
                // A bad record: torn tail, unless a valid record follows it.
                if !options.truncate_corrupt
                    && let Some(len) = bad_len
                    && Self::valid_record_at(&path, offset + (RECORD_HEADER_LEN + len) as u64)?
                {
                    return Err(JournalError::Corrupt { offset, seq: expected });
                }
                cut_at = Some(offset);
                break;
            }
        }
        let mut truncated_bytes = 0;
        if let Some(at) = cut_at {
            let end = file.metadata()?.len();
            truncated_bytes = end.saturating_sub(at);
            file.set_len(at)?;
            file.sync_all()?;
        }
        let journal = Self {
            file,
            path,
            sync: options.sync,
            next_seq: count + 1,
            len: offset,
            buf: Vec::new(),
            staged: 0,
            stage_time: 0,
            poisoned: false,
        };
        Ok((journal, Recovery { records: count, truncated_bytes, created }))
    }

    /// Whether a complete record with a good checksum starts at `offset`.
    fn valid_record_at(path: &Path, offset: u64) -> io::Result<bool> {
        let mut f = File::open(path)?;
        if f.metadata()?.len() <= offset {
            return Ok(false);
        }
        f.seek(SeekFrom::Start(offset))?;
        Ok(matches!(read_record(&mut f, &mut Vec::new())?, Read1::Good { .. }))
    }

    /// Appends one command (durable per [`Sync`] when this returns); its
    /// sequence number.
    ///
    /// # Errors
    /// I/O (nothing was appended: a partial write is cut back), or
    /// [`JournalError::Poisoned`] after a failed sync.
    pub fn append(&mut self, cmd: &Command) -> Result<u64, JournalError> {
        let seq = self.stage(cmd)?;
        self.commit()?;
        Ok(seq)
    }

    /// Appends many commands with one write and (with [`Sync::Always`]) one
    /// sync: group commit. Their sequence numbers.
    ///
    /// # Errors
    /// As [`Self::append`]; none of the batch was appended.
    pub fn append_batch(&mut self, cmds: &[Command]) -> Result<Range<u64>, JournalError> {
        self.append_batch_at(cmds, now_ns())
    }

    /// [`Self::append_batch`] with the records' time given: the time the
    /// caller acted on, so that a replay sees the same timestamps as the
    /// live run did.
    ///
    /// # Errors
    /// As [`Self::append`]; none of the batch was appended.
    pub fn append_batch_at(&mut self, cmds: &[Command], time_ns: u64) -> Result<Range<u64>, JournalError> {
        if self.staged == 0 {
            self.stage_time = time_ns;
        }
        let first = self.next_seq + self.staged;
        for cmd in cmds {
            self.stage(cmd)?;
        }
        self.commit()?;
        Ok(first..first + cmds.len() as u64)
    }

    /// Encodes a record into the pending batch; its sequence number.
    pub(crate) fn stage(&mut self, cmd: &Command) -> Result<u64, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        if self.staged == 0 && self.stage_time == 0 {
            self.stage_time = now_ns();
        }
        let seq = self.next_seq + self.staged;
        let start = self.buf.len();
        self.buf.resize(start + RECORD_HEADER_LEN, 0);
        codec::encode(cmd, &mut self.buf);
        let payload_len = self.buf.len() - start - RECORD_HEADER_LEN;
        let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
        {
            let header = &mut self.buf[start..start + RECORD_HEADER_LEN];
            header[0..4].copy_from_slice(&len.to_le_bytes());
            header[8..16].copy_from_slice(&seq.to_le_bytes());
            header[16..24].copy_from_slice(&self.stage_time.to_le_bytes());
        }
        let (header, payload) = self.buf[start..].split_at(RECORD_HEADER_LEN);
        let crc = record_crc(header, payload);
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.staged += 1;
        Ok(seq)
    }

    /// Writes (and syncs, per mode) the pending batch.
    pub(crate) fn commit(&mut self) -> Result<(), JournalError> {
        if self.poisoned {
            self.discard_staged();
            return Err(JournalError::Poisoned);
        }
        if self.staged == 0 {
            self.stage_time = 0;
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            self.discard_staged();
            // Cut a partial write back so the file stays a clean journal.
            if self.file.set_len(self.len).is_err() {
                self.poisoned = true;
            }
            return Err(e.into());
        }
        if self.sync == Sync::Always
            && let Err(e) = self.file.sync_data()
        {
            // After a failed fsync the page cache's state is unknown.
            self.discard_staged();
            self.poisoned = true;
            return Err(e.into());
        }
        self.len += self.buf.len() as u64;
        self.next_seq += self.staged;
        self.discard_staged();
        Ok(())
    }

    fn discard_staged(&mut self) {
        self.buf.clear();
        self.staged = 0;
        self.stage_time = 0;
    }

    /// The sequence number the next record will get.
    #[must_use]
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes of valid data in the file (header included).
    #[must_use]
    pub const fn len_bytes(&self) -> u64 {
        self.len
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability mode.
    #[must_use]
    pub const fn sync_mode(&self) -> Sync {
        self.sync
    }

    /// Whether a failed write or sync has poisoned the journal.
    #[must_use]
    pub const fn is_poisoned(&self) -> bool {
        self.poisoned
    }
}

/// Replays records into a venue (normally a fresh one), pushing the events
/// it produces; they equal the events the live venue produced for the same
/// commands.
///
/// # Errors
/// [`JournalError::ReplayRejected`] if the venue refuses a record (the
/// journal holds only accepted commands, so this means it was not written
/// from this venue state or engine version).
pub fn replay<S: EventSink + ?Sized>(venue: &mut Venue, records: &[Record], out: &mut S) -> Result<(), JournalError> {
    for record in records {
        venue.apply(&record.command, out).map_err(|reason| JournalError::ReplayRejected { seq: record.seq, reason })?;
    }
    Ok(())
}

/// A venue whose accepted commands are journaled before they take effect:
/// the piece an order gateway drives.
///
/// - [`Self::submit`]: check; a refused command is answered with
///   [`Event::Rejected`] and not journaled; an accepted one is appended
///   (synced per mode), then applied.
/// - [`Self::submit_batch`]: group commit. Each command is checked against
///   the state left by the ones before it and, if accepted, staged and
///   applied in memory; then the batch is written with one write and one
///   sync, and only then are its events handed back. No acknowledgment
///   precedes durability. If the write fails, the batch's events are
///   withdrawn and the venue is poisoned (its memory is ahead of the
///   journal): reopen it from the journal.
#[derive(Debug)]
pub struct JournaledVenue {
    venue: Venue,
    journal: Journal,
    poisoned: bool,
}

impl JournaledVenue {
    /// Opens (or creates) the journal and replays it, record by record as it
    /// is read, into a fresh venue; the replay's events go to `out` (pass
    /// [`Discard`](crate::engine::Discard) to drop them).
    ///
    /// # Errors
    /// As [`Journal::open_each`] and [`replay`].
    pub fn open<S: EventSink + ?Sized>(
        path: impl AsRef<Path>,
        options: OpenOptions,
        out: &mut S,
    ) -> Result<(Self, Recovery), JournalError> {
        let mut venue = Venue::new();
        let (journal, recovery) = Journal::open_each(path, options, |record| {
            venue.apply(&record.command, out).map_err(|reason| JournalError::ReplayRejected { seq: record.seq, reason })
        })?;
        Ok((Self { venue, journal, poisoned: false }, recovery))
    }

    /// Checks a command; journals and applies it if accepted. The inner
    /// result is the venue's answer (a refusal is also pushed as
    /// [`Event::Rejected`], and not journaled).
    ///
    /// # Errors
    /// The journal failed (the command was not applied).
    pub fn submit<S: EventSink + ?Sized>(
        &mut self,
        cmd: &Command,
        out: &mut S,
    ) -> Result<Result<(), RejectReason>, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        if let Err(reason) = self.venue.check(cmd) {
            out.event(self.venue.rejected(cmd, reason));
            return Ok(Err(reason));
        }
        self.journal.append(cmd)?;
        self.venue.execute(cmd, out);
        Ok(Ok(()))
    }

    /// Group commit: see the type's docs. The number of commands accepted.
    ///
    /// # Errors
    /// The journal failed: `out` is as it was, and the venue is poisoned if
    /// any command had been applied.
    pub fn submit_batch(&mut self, cmds: &[Command], out: &mut Vec<Event>) -> Result<usize, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        let mark = out.len();
        let mut accepted = 0;
        for cmd in cmds {
            if let Err(reason) = self.venue.check(cmd) {
                out.push(self.venue.rejected(cmd, reason));
                continue;
            }
            if let Err(e) = self.journal.stage(cmd) {
                self.journal.discard_staged();
                out.truncate(mark);
                self.poisoned |= accepted > 0;
                return Err(e);
            }
            self.venue.execute(cmd, out);
            accepted += 1;
        }
        if let Err(e) = self.journal.commit() {
            out.truncate(mark);
            self.poisoned |= accepted > 0;
            return Err(e);
        }
        Ok(accepted)
    }

    /// The venue (read-only: changes go through the journal).
    #[must_use]
    pub const fn venue(&self) -> &Venue {
        &self.venue
    }

    /// The journal.
    #[must_use]
    pub const fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Whether a failed batch write left memory ahead of the journal.
    #[must_use]
    pub const fn is_poisoned(&self) -> bool {
        self.poisoned || self.journal.poisoned
    }

    /// The venue and the journal, apart.
    #[must_use]
    pub fn into_parts(self) -> (Venue, Journal) {
        (self.venue, self.journal)
    }
}
