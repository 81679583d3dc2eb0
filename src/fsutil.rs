//! File-system helpers shared by writers: atomic replacement of a file, the
//! clean-up of the temporaries a killed writer left behind, and a lock that
//! keeps two processes from writing one folder.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `path` atomically: `write` fills a temporary file in the same
/// directory, which is flushed, synced and then renamed over `path`. A crash
/// at any point leaves either the old file or the new one, never a torn one.
pub fn atomic_write<F>(path: &Path, write: F) -> std::io::Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
{
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // What a killed writer of this same file left (a 300 MB dataset, say):
    // nobody else can ever finish it. Best effort: a folder that cannot be
    // listed still takes the write.
    let _ = remove_stale_temporaries(&dir, &[&name.to_string_lossy()]);
    let result = (|| {
        let mut out = BufWriter::new(File::create(&tmp)?);
        write(&mut out)?;
        out.flush()?;
        out.get_ref().sync_all()?;
        drop(out);
        std::fs::rename(&tmp, path)?;
        // The rename lives in the folder: sync it too, so that after a power
        // loss the new file is there (Linux and macOS sync a folder opened
        // read-only).
        #[cfg(unix)]
        File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes from `dir` the temporaries that [`atomic_write`] of one of
/// `files` (names in `dir`) left and whose writer is gone (a process killed
/// while writing; on Linux, where a process is known by `/proc/PID`): files
/// named `.<file>.tmp-<PID>`. Another program's temporaries of the same
/// pattern but other names are left alone. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path, files: &[&str]) -> std::io::Result<usize> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return Ok(0);
    }
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.rsplit_once(".tmp-"))
            .filter(|(file, _)| files.contains(file))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !proc.join(pid.to_string()).exists() {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// An advisory lock on a folder (`flock` on the folder itself, so no lock
/// file is left behind), held while the value lives; the kernel drops it
/// when the process ends, however it ends.
#[derive(Debug)]
pub struct FolderLock {
    _folder: Option<File>,
}

/// Another process holds the lock of a run folder.
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is in use by another chunkql process (training in it now); wait for it to end, or \
     stop it with Ctrl-C",
    dir.display()
)]
pub struct FolderBusy {
    pub dir: PathBuf,
}

/// Locks `dir` for this process, or says that another one holds it. Where a
/// folder cannot be opened as a file (not Linux), there is no lock.
pub fn lock_folder(dir: &Path) -> Result<FolderLock, FolderBusy> {
    let Ok(folder) = File::open(dir) else {
        return Ok(FolderLock { _folder: None });
    };
    match folder.try_lock() {
        Ok(()) => Ok(FolderLock {
            _folder: Some(folder),
        }),
        Err(std::fs::TryLockError::WouldBlock) => Err(FolderBusy {
            dir: dir.to_path_buf(),
        }),
        // A file system without locks: go on without one.
        Err(std::fs::TryLockError::Error(_)) => Ok(FolderLock { _folder: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        atomic_write(&path, |w| w.write_all(b"one")).unwrap();
        atomic_write(&path, |w| w.write_all(b"two")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        atomic_write(&path, |w| w.write_all(b"old")).unwrap();
        let err = atomic_write(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("killed"))
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn only_the_temporaries_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // No process has a pid past the kernel's limit (at most 2^22).
        let dead = dir.path().join(".checkpoint.safetensors.tmp-999999999");
        let mine = dir
            .path()
            .join(format!(".summary.json.tmp-{}", std::process::id()));
        let alive = dir.path().join(".eval.jsonl.tmp-1"); // init
        let other = dir.path().join("notes.tmp-999999999"); // not ours
        // Another program's temporary of the same pattern: not ours either.
        let foreign = dir.path().join(".notes.txt.tmp-999999999");
        for f in [&dead, &mine, &alive, &other, &foreign] {
            std::fs::write(f, b"x").unwrap();
        }
        let ours = ["checkpoint.safetensors", "summary.json", "eval.jsonl"];
        assert_eq!(remove_stale_temporaries(dir.path(), &ours).unwrap(), 1);
        assert!(!dead.exists());
        assert!(mine.exists() && alive.exists() && other.exists() && foreign.exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_write_removes_what_killed_writers_of_that_file_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.npz");
        let dead = dir.path().join(".data.npz.tmp-999999999");
        let other_file = dir.path().join(".data.npz.bak.tmp-999999999");
        let alive = dir.path().join(".data.npz.tmp-1"); // init
        for f in [&dead, &other_file, &alive] {
            std::fs::write(f, b"x").unwrap();
        }
        atomic_write(&path, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!dead.exists());
        assert!(other_file.exists() && alive.exists());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_locked_folder_is_refused_until_its_lock_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_folder(dir.path()).unwrap();
        let err = lock_folder(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("in use by another chunkql process"),
            "{err}"
        );
        drop(held);
        lock_folder(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
