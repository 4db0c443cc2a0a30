//! ZooKeeper's `currentEpoch` and `acceptedEpoch` files in dataDir: the decimal epoch, written
//! to a temporary file, fsynced and renamed into place (then the directory is fsynced), so a
//! file is always whole.

use std::io::{self, Write};
use std::path::Path;

use crate::zab::Epoch;

pub const CURRENT: &str = "currentEpoch";
pub const ACCEPTED: &str = "acceptedEpoch";

/// Reads one epoch file; a missing file is epoch 0 (a fresh server).
pub fn read(dir: &Path, name: &str) -> io::Result<Epoch> {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("{} does not hold an epoch", dir.join(name).display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Durably replaces one epoch file.
pub fn write(dir: &Path, name: &str, epoch: Epoch) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temp = dir.join(format!("{name}.tmp"));
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(epoch.to_string().as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, dir.join(name))?;
    crate::txlog::writer::sync_dir(dir)
}

/// Writes both files, each only if it changed.
pub fn save(dir: &Path, current: Epoch, accepted: Epoch) -> io::Result<()> {
    // acceptedEpoch first: currentEpoch ≤ acceptedEpoch holds on disk at every moment.
    if read(dir, ACCEPTED)? != accepted {
        write(dir, ACCEPTED, accepted)?;
    }
    if read(dir, CURRENT)? != current {
        write(dir, CURRENT, current)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("fk-epochs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(read(&dir, CURRENT).unwrap(), 0);
        save(&dir, 2, 3).unwrap();
        assert_eq!(read(&dir, CURRENT).unwrap(), 2);
        assert_eq!(read(&dir, ACCEPTED).unwrap(), 3);
        assert_eq!(std::fs::read_to_string(dir.join(ACCEPTED)).unwrap(), "3");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
