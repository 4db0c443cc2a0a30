//! The disk seam of the log writer: "write these bytes at this offset, then make them
//! durable". Two backends: io_uring (the write and its fdatasync linked in one submission) and
//! plain pwrite + fdatasync for kernels or sandboxes that refuse io_uring.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Which I/O backend a log uses (zoo.cfg `txnLogBackend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Uring,
    Sync,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Uring => "uring",
            Backend::Sync => "sync",
        }
    }
}

/// Writes batches to a file. To ensure correctness: `write_at` returns only after the bytes
/// are written and, when `sync` is set, after an fdatasync that was issued after the write
/// completed has returned.
pub trait Device: Send {
    fn backend(&self) -> Backend;
    fn write_at(&mut self, file: &File, offset: u64, data: &[u8], sync: bool) -> io::Result<()>;
}

pub struct SyncDevice;

impl Device for SyncDevice {
    fn backend(&self) -> Backend {
        Backend::Sync
    }

    fn write_at(&mut self, file: &File, offset: u64, data: &[u8], sync: bool) -> io::Result<()> {
        file.write_all_at(data, offset)?;
        if sync {
            file.sync_data()?;
        }
        Ok(())
    }
}

pub struct UringDevice {
    ring: io_uring::IoUring,
    /// The bytes of the batch in flight, owned by the device: the kernel reads them until the
    /// write completes, whatever the caller does with its own buffer.
    staging: Vec<u8>,
    /// Set when completions could not be reaped: what the kernel still holds is unknown, so
    /// the staged bytes were leaked (never freed under it) and every later call fails.
    broken: Option<String>,
    /// Test hook: errnos that the next `submit_and_wait` calls fail with (before submitting).
    #[cfg(test)]
    inject: std::collections::VecDeque<i32>,
}

const EINTR: i32 = 4;
const EAGAIN: i32 = 11;
const EBUSY: i32 = 16;

impl UringDevice {
    /// Sets up a ring; fails with the OS error where io_uring is refused (EPERM under
    /// Docker's default seccomp profile, ENOSYS on old kernels).
    pub fn new() -> io::Result<UringDevice> {
        Ok(UringDevice {
            ring: io_uring::IoUring::new(8)?,
            staging: Vec::new(),
            broken: None,
            #[cfg(test)]
            inject: std::collections::VecDeque::new(),
        })
    }

    fn submit_and_wait(&mut self, want: usize) -> io::Result<usize> {
        #[cfg(test)]
        if let Some(errno) = self.inject.pop_front() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        self.ring.submit_and_wait(want)
    }
}

impl Device for UringDevice {
    fn backend(&self) -> Backend {
        Backend::Uring
    }

    #[allow(unsafe_code)]
    fn write_at(&mut self, file: &File, offset: u64, data: &[u8], sync: bool) -> io::Result<()> {
        use io_uring::{opcode, squeue, types};
        if let Some(reason) = &self.broken {
            return Err(io::Error::other(format!(
                "io_uring device unusable after an earlier failure: {reason}"
            )));
        }
        let fd = types::Fd(file.as_raw_fd());
        let length = u32::try_from(data.len()).map_err(|_| io::Error::other("batch larger than 4 GiB"))?;
        self.staging.clear();
        self.staging.extend_from_slice(data);
        let write = opcode::Write::new(fd, self.staging.as_ptr(), length).offset(offset).build().user_data(1);
        let fsync = opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(2);
        let entries = if sync { vec![write.flags(squeue::Flags::IO_LINK), fsync] } else { vec![write] };
        {
            let mut queue = self.ring.submission();
            // All or nothing: an entry left behind in the queue would be submitted later.
            if queue.capacity() - queue.len() < entries.len() {
                return Err(io::Error::other("io_uring submission queue full"));
            }
            for entry in &entries {
                // SAFETY: `staging` and the file descriptor outlive the operations: the loop
                // below returns only once every pushed entry has completed, or, when that
                // cannot be known, after leaking `staging` so it is never freed or reused.
                unsafe { queue.push(entry) }
                    .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            }
        }
        let mut written: Option<i32> = None;
        let mut synced: Option<i32> = None;
        let mut completed = 0;
        while completed < entries.len() {
            match self.submit_and_wait(entries.len() - completed) {
                Ok(_) => {}
                Err(error) if matches!(error.raw_os_error(), Some(EINTR | EAGAIN | EBUSY)) => {}
                Err(error) => {
                    // Entries may be in flight: the kernel may still read `staging`.
                    std::mem::forget(std::mem::take(&mut self.staging));
                    self.broken = Some(error.to_string());
                    return Err(error);
                }
            }
            for cqe in self.ring.completion() {
                completed += 1;
                match cqe.user_data() {
                    1 => written = Some(cqe.result()),
                    _ => synced = Some(cqe.result()),
                }
            }
        }
        let written = written.ok_or_else(|| io::Error::other("io_uring lost the write completion"))?;
        if written < 0 {
            return Err(io::Error::from_raw_os_error(-written));
        }
        let written = written as usize;
        if written < data.len() {
            // A short write breaks the link (the fsync is cancelled): finish it plainly.
            file.write_all_at(&data[written..], offset + written as u64)?;
            if sync {
                file.sync_data()?;
            }
            return Ok(());
        }
        if sync {
            let synced = synced.ok_or_else(|| io::Error::other("io_uring lost the fsync completion"))?;
            if synced < 0 {
                return Err(io::Error::from_raw_os_error(-synced));
            }
        }
        Ok(())
    }
}

/// The device for `wanted`, falling back to pwrite + fdatasync (with one log line) where
/// io_uring is refused.
pub fn open_device(wanted: Backend) -> Box<dyn Device> {
    match wanted {
        Backend::Sync => Box::new(SyncDevice),
        Backend::Uring => match UringDevice::new() {
            Ok(device) => Box::new(device),
            Err(error) => {
                tracing::warn!(%error, "io_uring unavailable; transaction log falls back to the sync backend");
                Box::new(SyncDevice)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Read;

    fn round_trip(mut device: Box<dyn Device>) {
        let dir = std::env::temp_dir().join(format!(
            "fk-device-{}-{}",
            std::process::id(),
            device.backend().name()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        device.write_at(&file, 0, b"hello ", true).unwrap();
        device.write_at(&file, 6, b"world", false).unwrap();
        let mut text = String::new();
        std::fs::File::open(&path).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello world");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sync_device_writes() {
        round_trip(Box::new(SyncDevice));
    }

    /// Where the kernel allows io_uring, the uring device itself round-trips and `open_device`
    /// hands it out. Where it is refused (EPERM under seccomp, ENOSYS on old kernels), the test
    /// says so on stderr, checks the refusal is one of those, and that `open_device` falls back
    /// to the sync device: it does not pass off the sync device as a uring test.
    #[test]
    fn uring_device_writes_where_the_kernel_allows() {
        match UringDevice::new() {
            Ok(device) => {
                assert_eq!(open_device(Backend::Uring).backend(), Backend::Uring);
                round_trip(Box::new(device));
            }
            Err(error) => {
                eprintln!(
                    "SKIPPED uring_device_writes_where_the_kernel_allows: io_uring refused here ({error})"
                );
                let refused = [Some(libc_eperm()), Some(libc_enosys())];
                assert!(refused.contains(&error.raw_os_error()), "unexpected io_uring error: {error}");
                assert_eq!(open_device(Backend::Uring).backend(), Backend::Sync);
            }
        }
    }

    fn temp_file(name: &str) -> (std::path::PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("fk-device-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.join("f"))
            .unwrap();
        (dir, file)
    }

    /// An interrupted submission is retried until every entry completed; an unrecoverable
    /// one fails the call, leaks the staged bytes (the kernel may still read them) and makes
    /// the device refuse every later write instead of reusing them.
    #[test]
    fn uring_submission_errors_keep_the_buffer_alive() {
        let Ok(mut device) = UringDevice::new() else {
            eprintln!("SKIPPED uring_submission_errors_keep_the_buffer_alive: io_uring refused here");
            return;
        };
        let (dir, file) = temp_file("inject");
        device.inject.extend([EINTR, EAGAIN]);
        device.write_at(&file, 0, b"after two retries", true).unwrap();
        assert!(device.inject.is_empty());
        let mut text = String::new();
        std::fs::File::open(dir.join("f")).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "after two retries");
        device.inject.push_back(9); // EBADF
        let caller_buffer = b"the caller may free this".to_vec();
        let error = device.write_at(&file, 0, &caller_buffer, true).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(9));
        drop(caller_buffer);
        assert!(device.staging.is_empty(), "the staged bytes were not given up");
        let again = device.write_at(&file, 0, b"x", false).unwrap_err();
        assert!(again.to_string().contains("unusable"), "{again}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn libc_eperm() -> i32 {
        1
    }

    fn libc_enosys() -> i32 {
        38
    }
}
