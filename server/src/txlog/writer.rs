//! The log writer: a thread of its own that owns the open segment and the I/O device. The
//! request path queues appends without blocking; while one write + fdatasync is in flight the
//! next batch accumulates in the queue (group commit). After each batch the durable zxid is
//! published on a watch channel. An I/O error poisons the log: the error is published, the
//! thread stops, and no later append is ever written or acknowledged.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::device::{Backend, Device, open_device};
use super::format::{encode_record, encode_segment_header, segment_name};
use super::stats::LogStats;

/// Log settings from zoo.cfg (names follow ZooKeeper where it has one).
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub dir: PathBuf,
    /// `forceSync`: fdatasync each batch (acknowledge only after it returns).
    pub force_sync: bool,
    /// `txnLogBackend`: sync (default) or uring. Measured on this project's machines the
    /// io_uring fdatasync is slower under load (the kernel runs it on an io-wq worker thread,
    /// which competes for the CPUs), so pwrite + fdatasync on the writer thread is the default;
    /// see benches/README.md.
    pub backend: Backend,
    /// `maxBatchSize`: most txns per batch.
    pub batch_txns_max: usize,
    /// `txnLogBatchBytesMax`: most bytes per batch.
    pub batch_bytes_max: usize,
    /// `flushDelay`: how long a batch may wait for more txns (0 = write as soon as the
    /// previous batch is durable).
    pub flush_delay: Duration,
    /// `preAllocSize`: segments grow in steps of this many bytes.
    pub prealloc_bytes: u64,
    /// `txnLogSizeLimitInKb`: a segment is rolled once it holds this much.
    pub segment_bytes_max: u64,
}

impl LogSettings {
    pub fn new(dir: PathBuf) -> LogSettings {
        LogSettings {
            dir,
            force_sync: true,
            backend: Backend::Sync,
            batch_txns_max: 1000,
            batch_bytes_max: 4 * 1024 * 1024,
            flush_delay: Duration::ZERO,
            prealloc_bytes: 64 * 1024 * 1024,
            segment_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// What the writer has made durable, or why it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStatus {
    /// Every txn with zxid ≤ this is durable (written and, with forceSync, synced).
    pub durable_zxid: i64,
    /// Set once when the log is poisoned; nothing after `durable_zxid` will ever be durable.
    pub failure: Option<String>,
}

enum Command {
    Append { zxid: i64, payload: bytes::Bytes },
    Roll,
    Shutdown,
}

pub struct LogWriter {
    sender: Sender<Command>,
    thread: Option<JoinHandle<()>>,
    status: watch::Receiver<LogStatus>,
    stats: Arc<LogStats>,
    backend: Backend,
}

impl LogWriter {
    /// Starts the writer thread. `durable_zxid` is the last zxid already on disk.
    pub fn start(settings: LogSettings, durable_zxid: i64) -> io::Result<LogWriter> {
        let device = open_device(settings.backend);
        LogWriter::start_with_device(settings, durable_zxid, device)
    }

    /// Starts the writer over a given device (tests inject failing devices this way).
    pub fn start_with_device(
        settings: LogSettings,
        durable_zxid: i64,
        device: Box<dyn Device>,
    ) -> io::Result<LogWriter> {
        std::fs::create_dir_all(&settings.dir)?;
        let backend = device.backend();
        let (sender, receiver) = std::sync::mpsc::channel();
        let (status_tx, status) = watch::channel(LogStatus { durable_zxid, failure: None });
        let stats = Arc::new(LogStats::default());
        let thread_state = WriterThread {
            settings,
            device,
            receiver,
            status: status_tx,
            stats: stats.clone(),
            segment: None,
            buffer: Vec::with_capacity(1 << 20),
        };
        let thread =
            std::thread::Builder::new().name("txlog-writer".into()).spawn(move || thread_state.run())?;
        Ok(LogWriter { sender, thread: Some(thread), status, stats, backend })
    }

    /// Queues one record; never blocks. Zxids must increase.
    pub fn append(&self, zxid: i64, payload: impl Into<bytes::Bytes>) {
        self.stats.appended_txns.fetch_add(1, Relaxed);
        // After a failure the thread is gone; the failure is already on the status channel.
        let _ = self.sender.send(Command::Append { zxid, payload: payload.into() });
    }

    /// Closes the current segment after what is queued; the next append starts a new one.
    pub fn roll(&self) {
        let _ = self.sender.send(Command::Roll);
    }

    pub fn status(&self) -> watch::Receiver<LogStatus> {
        self.status.clone()
    }

    pub fn stats(&self) -> Arc<LogStats> {
        self.stats.clone()
    }

    /// The backend actually in use (after any fallback).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes what is queued, then stops the thread.
    pub fn shutdown(mut self) {
        let _ = self.sender.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.sender.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Segment {
    file: File,
    /// Where the next batch goes.
    offset: u64,
    /// Bytes reserved with fallocate.
    allocated: u64,
}

struct WriterThread {
    settings: LogSettings,
    device: Box<dyn Device>,
    receiver: Receiver<Command>,
    status: watch::Sender<LogStatus>,
    stats: Arc<LogStats>,
    segment: Option<Segment>,
    buffer: Vec<u8>,
}

impl WriterThread {
    fn run(mut self) {
        loop {
            let (first_zxid, first_payload) = match self.receiver.recv() {
                Ok(Command::Append { zxid, payload }) => (zxid, payload),
                Ok(Command::Roll) => {
                    self.close_segment();
                    continue;
                }
                Ok(Command::Shutdown) | Err(_) => return,
            };
            self.buffer.clear();
            encode_record(&mut self.buffer, first_zxid, &first_payload);
            let mut last_zxid = first_zxid;
            let mut txns = 1usize;
            let mut roll_after = false;
            let mut stop_after = false;
            let deadline = Instant::now() + self.settings.flush_delay;
            while txns < self.settings.batch_txns_max && self.buffer.len() < self.settings.batch_bytes_max {
                let next = if self.settings.flush_delay.is_zero() {
                    self.receiver.try_recv().map_err(|e| matches!(e, TryRecvError::Disconnected))
                } else {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    self.receiver.recv_timeout(wait).map_err(|e| matches!(e, RecvTimeoutError::Disconnected))
                };
                match next {
                    Ok(Command::Append { zxid, payload }) => {
                        debug_assert!(zxid > last_zxid, "log appends must have increasing zxids");
                        encode_record(&mut self.buffer, zxid, &payload);
                        last_zxid = zxid;
                        txns += 1;
                    }
                    Ok(Command::Roll) => {
                        roll_after = true;
                        break;
                    }
                    Ok(Command::Shutdown) | Err(true) => {
                        stop_after = true;
                        break;
                    }
                    Err(false) => break,
                }
            }
            if let Err(error) = self.write_batch(first_zxid) {
                let message = format!(
                    "transaction log write failed in {}: {error}; refusing further writes",
                    self.settings.dir.display()
                );
                tracing::error!("{message}");
                self.status.send_modify(|s| s.failure = Some(message));
                return;
            }
            self.stats.written_txns.fetch_add(txns as u64, Relaxed);
            self.stats.written_bytes.fetch_add(self.buffer.len() as u64, Relaxed);
            self.stats.batches.fetch_add(1, Relaxed);
            self.stats.txns_per_batch.record(txns as u64);
            self.stats.bytes_per_batch.record(self.buffer.len() as u64);
            self.status.send_modify(|s| s.durable_zxid = last_zxid);
            let full = self.segment.as_ref().is_some_and(|s| s.offset >= self.settings.segment_bytes_max);
            if roll_after || full {
                self.close_segment();
            }
            if stop_after {
                return;
            }
        }
    }

    /// Gives back the unused preallocation of a finished segment so later scans read only
    /// data. Not synced: if the truncation is lost, the segment just keeps its zero fill.
    fn close_segment(&mut self) {
        if let Some(segment) = self.segment.take()
            && let Err(error) = segment.file.set_len(segment.offset)
        {
            tracing::warn!(%error, "cannot trim a finished log segment");
        }
    }

    fn write_batch(&mut self, first_zxid: i64) -> io::Result<()> {
        if self.segment.is_none() {
            self.segment = Some(self.create_segment(first_zxid)?);
        }
        let Some(segment) = self.segment.as_mut() else { unreachable!("segment opened above") };
        let end = segment.offset + self.buffer.len() as u64;
        if end > segment.allocated {
            let grow_to = end.max(segment.allocated + self.settings.prealloc_bytes);
            preallocate(&segment.file, segment.allocated, grow_to - segment.allocated)?;
            segment.allocated = grow_to;
        }
        let started = Instant::now();
        self.device.write_at(&segment.file, segment.offset, &self.buffer, self.settings.force_sync)?;
        self.stats.fsync_micros.record(started.elapsed().as_micros() as u64);
        segment.offset = end;
        Ok(())
    }

    fn create_segment(&mut self, first_zxid: i64) -> io::Result<Segment> {
        let path = self.settings.dir.join(segment_name(first_zxid));
        // A file of this name can exist only if an earlier run created it and crashed before
        // any record in it became durable (recovery found nothing at or after this zxid), so
        // it holds nothing acknowledged and is started afresh.
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        let header = encode_segment_header(first_zxid);
        let allocated = self.settings.prealloc_bytes.max(header.len() as u64);
        preallocate(&file, 0, allocated)?;
        self.device.write_at(&file, 0, &header, true)?;
        file.sync_all()?;
        sync_dir(&self.settings.dir)?;
        self.stats.segments_created.fetch_add(1, Relaxed);
        tracing::debug!(path = %path.display(), "new log segment");
        Ok(Segment { file, offset: header.len() as u64, allocated })
    }
}

/// Reserves disk blocks so a full disk shows up here, not in the middle of a batch, and so
/// later fdatasyncs need not allocate.
fn preallocate(file: &File, offset: u64, length: u64) -> io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, length).map_err(io::Error::from)
}

/// Makes a new directory entry durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
