//! An append-only, hash-chained audit log in a JSON Lines file.
//!
//! What "durable" means is the [`Durability`] chosen:
//!
//! - [`Durability::Fsync`]: group commit. Callers hand records to one writer
//!   thread, which chains whatever has queued up, writes it in one `write`,
//!   calls `fdatasync` once, and only then answers every caller: a record
//!   survives power loss. Under load many records share one flush (about
//!   4 ms on the reference machine's virtual disk).
//! - [`Durability::Os`]: group write. Callers hand records to one writer
//!   task on the async runtime (no thread hand-off, no lock a caller's
//!   thread could block on), which chains whatever has queued up and writes
//!   it in one `write`; each caller is answered once its record is in the
//!   kernel, so it survives the process being killed (`kill -9`, panic,
//!   OOM). A background `fdatasync` every interval bounds what an
//!   operating-system crash or power loss can take. Outside a runtime (the
//!   command line), the caller writes its record itself under a lock.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use parking_lot::Mutex;
use plexus_core::audit::{AuditEvent, AuditRecord, GENESIS};
use plexus_core::ports::{AuditError, AuditSink};
use tokio::sync::oneshot;

/// Most records chained into one write.
const MAX_BATCH: usize = 4096;

/// When a record counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Flushed to the disk before the caller is answered.
    Fsync,
    /// Written to the kernel before the caller is answered; flushed to the
    /// disk at most this long afterwards.
    Os {
        /// Longest time between background flushes.
        flush_every: std::time::Duration,
    },
}

/// The chain's tail and the file it is written to.
struct Chain {
    file: File,
    seq: u64,
    prev: String,
    buf: Vec<u8>,
}

impl Chain {
    /// Chain `events`, write them in one `write` (and flush if asked).
    /// On failure nothing is chained and the file is cut back to a record
    /// boundary.
    fn append(&mut self, events: impl Iterator<Item = AuditEvent>, fsync: bool) -> std::io::Result<usize> {
        self.buf.clear();
        let mut prev = self.prev.clone();
        let mut n = 0u64;
        for e in events {
            prev = AuditRecord::write_chained(self.seq + n, &prev, &e, &mut self.buf);
            self.buf.push(b'\n');
            n += 1;
        }
        let result = self.file.write_all(&self.buf).and_then(|()| if fsync { self.file.sync_data() } else { Ok(()) });
        match result {
            Ok(()) => {
                self.seq += n;
                self.prev = prev;
                Ok(n as usize)
            }
            Err(e) => {
                tracing::error!(error = %e, "audit write failed");
                let _ = truncate_torn_tail(&mut self.file);
                Err(e)
            }
        }
    }
}

struct Pending {
    event: AuditEvent,
    done: oneshot::Sender<Result<(), String>>,
}

enum Writer {
    /// Fsync: a thread, since `fdatasync` blocks for milliseconds.
    Thread { tx: mpsc::Sender<Pending>, depth: Arc<AtomicUsize> },
    /// Os, in a runtime: a task whose writes to the page cache take
    /// microseconds.
    Task { tx: tokio::sync::mpsc::UnboundedSender<Pending>, depth: Arc<AtomicUsize>, chain: Arc<Mutex<Chain>> },
    /// Os, outside a runtime.
    Inline { chain: Arc<Mutex<Chain>> },
}

impl Writer {
    /// Queue a record for the writer thread or task.
    fn enqueue(&self, p: Pending) -> Result<(), ()> {
        let depth = match self {
            Writer::Thread { depth, .. } | Writer::Task { depth, .. } => depth,
            Writer::Inline { .. } => return Err(()),
        };
        // Counted before it is sent, so the writer never counts it down first.
        depth.fetch_add(1, Ordering::Relaxed);
        let sent = match self {
            Writer::Thread { tx, .. } => tx.send(p).is_ok(),
            Writer::Task { tx, .. } => tx.send(p).is_ok(),
            Writer::Inline { .. } => false,
        };
        if !sent {
            depth.fetch_sub(1, Ordering::Relaxed);
            return Err(());
        }
        Ok(())
    }
}

/// Chain and write one batch, then answer every caller in it.
fn write_batch(chain: &mut Chain, batch: &mut Vec<Pending>, fsync: bool, depth: &AtomicUsize) {
    let (events, dones): (Vec<AuditEvent>, Vec<_>) = batch.drain(..).map(|p| (p.event, p.done)).unzip();
    let result = chain.append(events.into_iter(), fsync).map(|_| ()).map_err(|e| e.to_string());
    depth.fetch_sub(dones.len(), Ordering::Relaxed);
    for done in dones {
        let _ = done.send(result.clone());
    }
}

/// The audit log; cheap to share behind an `Arc`.
pub struct JsonlAuditLog {
    writer: Writer,
    path: PathBuf,
    /// Cleared on drop; the flusher flushes one last time and stops.
    alive: Arc<AtomicBool>,
}

impl std::fmt::Debug for JsonlAuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlAuditLog").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Drop for JsonlAuditLog {
    fn drop(&mut self) {
        self.alive.store(false, Ordering::Release);
        if let Writer::Inline { chain } | Writer::Task { chain, .. } = &self.writer {
            let _ = chain.lock().file.sync_data();
        }
    }
}

/// Read every complete record of a log. A torn last line (a crash in the
/// middle of a write, before any caller was answered) is ignored.
pub fn read_records(path: &Path) -> std::io::Result<Vec<AuditRecord>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let mut lines = BufReader::new(file).lines().peekable();
    let mut n = 0usize;
    while let Some(line) = lines.next() {
        let line = line?;
        n += 1;
        let last = lines.peek().is_none();
        match serde_json::from_str::<AuditRecord>(&line) {
            Ok(r) => out.push(r),
            Err(_) if last => break,
            Err(e) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: line {n} is not an audit record: {e}", path.display()),
                ));
            }
        }
    }
    Ok(out)
}

/// Cut a torn last line so the next append starts on a line boundary.
fn truncate_torn_tail(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut buf = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    std::io::Read::read_to_end(file, &mut buf)?;
    let keep = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as u64;
    if keep < len {
        file.set_len(keep)?;
    }
    file.seek(SeekFrom::End(0))?;
    Ok(())
}

impl JsonlAuditLog {
    /// Open (or create) the log at `path` with fsync durability.
    pub fn open(path: impl Into<PathBuf>) -> std::io::Result<Self> {
        Self::open_with(path, Durability::Fsync)
    }

    /// Open (or create) the log at `path`, continuing its chain.
    pub fn open_with(path: impl Into<PathBuf>, durability: Durability) -> std::io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path)?;
        truncate_torn_tail(&mut file)?;
        let records = read_records(&path)?;
        let (seq, prev) = match records.last() {
            Some(r) => (r.seq + 1, r.hash.clone()),
            None => (0, GENESIS.to_owned()),
        };
        let alive = Arc::new(AtomicBool::new(true));
        let chain = Chain { file, seq, prev, buf: Vec::with_capacity(64 * 1024) };
        let writer = match durability {
            Durability::Os { flush_every } => {
                let flusher = chain.file.try_clone()?;
                let flush_path = path.clone();
                let flusher_alive = Arc::clone(&alive);
                std::thread::Builder::new().name("plexus-audit-flush".into()).spawn(move || {
                    while flusher_alive.load(Ordering::Acquire) {
                        std::thread::sleep(flush_every);
                        if let Err(e) = flusher.sync_data() {
                            tracing::error!(error = %e, path = %flush_path.display(), "audit flush failed");
                        }
                    }
                })?;
                let chain = Arc::new(Mutex::new(chain));
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Pending>();
                        let depth = Arc::new(AtomicUsize::new(0));
                        let (writer_chain, writer_depth) = (Arc::clone(&chain), Arc::clone(&depth));
                        runtime.spawn(async move {
                            let mut batch = Vec::with_capacity(256);
                            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                                write_batch(&mut writer_chain.lock(), &mut batch, false, &writer_depth);
                            }
                        });
                        Writer::Task { tx, depth, chain }
                    }
                    Err(_) => Writer::Inline { chain },
                }
            }
            Durability::Fsync => {
                let (tx, rx) = mpsc::channel::<Pending>();
                let depth = Arc::new(AtomicUsize::new(0));
                let writer_depth = Arc::clone(&depth);
                let mut chain = chain;
                std::thread::Builder::new().name("plexus-audit".into()).spawn(move || {
                    while let Ok(first) = rx.recv() {
                        let mut batch = vec![first];
                        while batch.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(p) => batch.push(p),
                                Err(_) => break,
                            }
                        }
                        write_batch(&mut chain, &mut batch, true, &writer_depth);
                    }
                })?;
                Writer::Thread { tx, depth }
            }
        };
        Ok(Self { writer, path, alive })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait::async_trait]
impl AuditSink for JsonlAuditLog {
    async fn append(&self, event: AuditEvent) -> Result<(), AuditError> {
        match &self.writer {
            // A write of one line to the page cache: microseconds, so it is
            // done on the caller's thread rather than handed to another.
            Writer::Inline { chain } => {
                chain.lock().append(std::iter::once(event), false).map(|_| ()).map_err(|e| AuditError(e.to_string()))
            }
            Writer::Thread { .. } | Writer::Task { .. } => {
                let (done, rx) = oneshot::channel();
                if self.writer.enqueue(Pending { event, done }).is_err() {
                    return Err(AuditError("audit writer stopped".into()));
                }
                match rx.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(AuditError(e)),
                    Err(_) => Err(AuditError("audit writer stopped".into())),
                }
            }
        }
    }

    fn queue_depth(&self) -> usize {
        match &self.writer {
            Writer::Thread { depth, .. } | Writer::Task { depth, .. } => depth.load(Ordering::Relaxed),
            Writer::Inline { .. } => 0,
        }
    }
}

/// Reads the file back for `query_audit_log`.
#[async_trait::async_trait]
impl plexus_core::ports::AuditReader for JsonlAuditLog {
    async fn query(&self, q: &plexus_core::ports::AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        let path = self.path.clone();
        let records = tokio::task::spawn_blocking(move || read_records(&path))
            .await
            .map_err(|e| AuditError(e.to_string()))?
            .map_err(|e| AuditError(e.to_string()))?;
        Ok(plexus_core::ports::newest_matches(records, q))
    }

    async fn chains(&self) -> Result<Vec<(String, Vec<AuditRecord>)>, AuditError> {
        let path = self.path.clone();
        let name = path.display().to_string();
        let records = tokio::task::spawn_blocking(move || read_records(&path))
            .await
            .map_err(|e| AuditError(e.to_string()))?
            .map_err(|e| AuditError(e.to_string()))?;
        Ok(vec![(name, records)])
    }
}

#[cfg(test)]
mod tests {
    use plexus_core::audit::verify;

    use super::*;

    fn event(i: usize) -> AuditEvent {
        AuditEvent {
            time: "2026-11-21T00:00:00Z".into(),
            request_id: format!("r{i}"),
            session: None,
            principal: "p".into(),
            tenant: "t".into(),
            operation: "tools/call".into(),
            target: "echo".into(),
            args_digest: String::new(),
            outcome: "ok".into(),
            latency_us: 1,
            client_addr: None,
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("plexus-audit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("audit.jsonl")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_form_one_chain_across_reopen() {
        let os = Durability::Os { flush_every: std::time::Duration::from_millis(5) };
        for (name, durability) in [("fsync", Durability::Fsync), ("os", os)] {
            let path = temp(&format!("chain-{name}"));
            let log = Arc::new(JsonlAuditLog::open_with(&path, durability).unwrap());
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let log = Arc::clone(&log);
                    tokio::spawn(async move { log.append(event(i)).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
            assert_eq!(log.queue_depth(), 0);
            drop(log);
            // reopen (in the other mode) and continue the same chain
            let log = JsonlAuditLog::open(&path).unwrap();
            log.append(event(999)).await.unwrap();
            let records = read_records(&path).unwrap();
            assert_eq!(records.len(), 201, "{name}");
            assert_eq!(verify(&records).unwrap().records, 201, "{name}");
            let mut ids: Vec<_> = records.iter().map(|r| r.request_id.clone()).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 201, "{name}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn os_durability_writes_before_answering() {
        let path = temp("os");
        let log = JsonlAuditLog::open_with(&path, Durability::Os { flush_every: std::time::Duration::from_millis(5) })
            .unwrap();
        for i in 0..20 {
            log.append(event(i)).await.unwrap();
            // answered means readable by another process right now
            assert_eq!(read_records(&path).unwrap().len(), i + 1);
        }
        verify(&read_records(&path).unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_and_the_chain_continues() {
        let path = temp("torn");
        let log = JsonlAuditLog::open(&path).unwrap();
        log.append(event(1)).await.unwrap();
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"seq":1,"time":"2026"#).unwrap();
        drop(f);
        assert_eq!(read_records(&path).unwrap().len(), 1);
        let log = JsonlAuditLog::open(&path).unwrap();
        log.append(event(2)).await.unwrap();
        let records = read_records(&path).unwrap();
        assert_eq!(records.len(), 2);
        verify(&records).unwrap();
    }
}
