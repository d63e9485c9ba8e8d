//! The frame every file of ours is stored in: magic (4 bytes), format version (u16 LE), payload
//! length (u32 LE), CRC-32 of the payload (u32 LE), then the payload (postcard). Pure; plus the
//! edges that read a whole file within a bound and write one whole (temporary, fsync, rename,
//! directory fsync, mode 0600), as the settings, the history and the battery tests' results do.
//!
//! **Invariant:** [`open`] never panics and hands out a payload only when its length and CRC
//! match.

use super::stored::crc32;

pub const HEADER: usize = 4 + 2 + 4 + 4;

/// Why a frame was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    TooShort(usize),
    BadMagic,
    UnknownVersion(u16),
    TooLong(usize),
    Truncated { expected: usize, got: usize },
    Checksum,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooShort(n) => write!(f, "{n} bytes is too short for the file's header"),
            FrameError::BadMagic => write!(f, "not this kind of file (wrong magic bytes)"),
            FrameError::UnknownVersion(v) => {
                write!(f, "format version {v} is not one this program knows")
            }
            FrameError::TooLong(n) => write!(f, "the payload length {n} is larger than allowed"),
            FrameError::Truncated { expected, got } => write!(
                f,
                "truncated: the payload should be {expected} bytes, the file has {got}"
            ),
            FrameError::Checksum => write!(f, "the checksum does not match: the file is damaged"),
        }
    }
}

/// The framed bytes of `payload`.
pub fn seal(magic: &[u8; 4], version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The version and payload of a frame, checked: magic, a version in `1..=newest`, at most
/// `max_payload` bytes, the exact length, the CRC.
pub fn open<'a>(
    bytes: &'a [u8],
    magic: &[u8; 4],
    newest: u16,
    max_payload: usize,
) -> Result<(u16, &'a [u8]), FrameError> {
    if bytes.len() < HEADER {
        return Err(FrameError::TooShort(bytes.len()));
    }
    if &bytes[..4] != magic {
        return Err(FrameError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    let len = u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]) as usize;
    let crc = u32::from_le_bytes([bytes[10], bytes[11], bytes[12], bytes[13]]);
    if version == 0 || version > newest {
        return Err(FrameError::UnknownVersion(version));
    }
    if len > max_payload {
        return Err(FrameError::TooLong(len));
    }
    let payload = &bytes[HEADER..];
    if payload.len() != len {
        return Err(FrameError::Truncated {
            expected: len,
            got: payload.len(),
        });
    }
    if crc32(payload) != crc {
        return Err(FrameError::Checksum);
    }
    Ok((version, payload))
}

/// Reads at most `HEADER + max_payload + 1` bytes of `path`; `Ok(None)` when there is no file.
pub fn read_bounded(
    path: &std::path::Path,
    max_payload: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    match std::fs::File::open(path) {
        Ok(f) => {
            let mut bytes = Vec::new();
            f.take((HEADER + max_payload + 1) as u64)
                .read_to_end(&mut bytes)?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Moves a damaged file aside to `NAME.damaged`; says where it went (for the log).
pub fn set_aside(path: &std::path::Path) -> String {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".damaged");
    match std::fs::rename(path, &aside) {
        Ok(()) => format!("kept as {}", std::path::Path::new(&aside).display()),
        Err(err) => format!("cannot be moved aside: {err}"),
    }
}

/// Writes `bytes` whole: a new file (mode 0600), synced, renamed over the old one, the
/// directory synced. The old file stays until the new one is complete.
pub fn write_whole(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let written = (|| -> std::io::Result<()> {
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_every_damage_is_refused() {
        let sealed = seal(b"TEST", 2, b"payload");
        assert_eq!(
            open(&sealed, b"TEST", 2, 100).unwrap(),
            (2, &b"payload"[..])
        );
        assert_eq!(open(&sealed, b"TSET", 2, 100), Err(FrameError::BadMagic));
        assert_eq!(
            open(&sealed, b"TEST", 1, 100),
            Err(FrameError::UnknownVersion(2))
        );
        assert_eq!(open(&sealed, b"TEST", 2, 3), Err(FrameError::TooLong(7)));
        for n in 0..sealed.len() {
            assert!(open(&sealed[..n], b"TEST", 2, 100).is_err(), "cut at {n}");
        }
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut b = sealed.clone();
                b[i] ^= 1 << bit;
                assert!(open(&b, b"TEST", 2, 100).is_err(), "byte {i} bit {bit}");
            }
        }
    }
}
