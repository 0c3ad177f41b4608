//! On-disk reservations of one network, host-local's layout plus an index.
//!
//! `<dataDir>/<network>/<ip>` holds `containerID\r\nifname` (host-local's format),
//! `last_reserved_ip.<set>` the round-robin cursor, and
//! `attachments/<ifname>/<containerID>` (a hash past 200 bytes) names the
//! attachment and lists its IPs, so DEL and CHECK never scan every reservation. Callers hold the network's lock.

use crate::private_file;
use crate::IpamError;
use conf::names::{id_file_name, is_hashed_id_file_name};
use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The index's first line: the attachment's container ID (its file name
/// is a hash for a long one).
const ID_LINE: &str = "# ";

pub struct DiskStore {
    dir: PathBuf,
}

/// One reservation found on disk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reservation {
    pub ip: IpAddr,
    pub container_id: String,
    pub ifname: String,
}

/// Creates `path` with `body`; false if it exists. The file appears whole
/// or not at all, so no kill or full disk leaves a reservation without its
/// holder: it is written unnamed (O_TMPFILE), then linked under its name,
/// which fails if the name is taken.
fn write_new(path: &Path, body: &str) -> io::Result<bool> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let unnamed = || OpenOptions::new().write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(dir);
    let opened = match unnamed() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => private_file::make_dirs(dir).and_then(|()| unnamed()),
        r => r,
    };
    let mut f = match opened {
        Ok(f) => f,
        // a filesystem without O_TMPFILE: create, and remove what a failed write left
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
            return match private_file::open(path, OpenOptions::new().write(true).create_new(true)) {
                Ok(f) => fill(f, path, body).map(|()| true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    f.write_all(body.as_bytes())?;
    let from = CString::new(format!("/proc/self/fd/{}", f.as_raw_fd()))?;
    let to = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: two valid C strings; linkat only reads them.
    let linked =
        unsafe { libc::linkat(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::AT_SYMLINK_FOLLOW) };
    match linked {
        0 => Ok(true),
        _ => match io::Error::last_os_error() {
            e if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            e => Err(e),
        },
    }
}

/// Writes `body` into the new file at `path`, removing it when that fails.
fn fill(mut f: fs::File, path: &Path, body: &str) -> io::Result<()> {
    let written = f.write_all(body.as_bytes());
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl DiskStore {
    /// The directory is made by the first file written into it.
    pub fn open(data_dir: &str, network: &str) -> DiskStore {
        DiskStore { dir: Path::new(data_dir).join(network) }
    }

    /// The context of an I/O error: what failed, in which directory (a full
    /// or read-only disk is fixed there).
    pub fn io(&self, what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> IpamError {
        IpamError::io(format!("{what} in {}", self.dir.display()))
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("lock")
    }

    fn index_path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join("attachments").join(ifname).join(&*id_file_name(container_id))
    }

    /// Claims `ip` for the attachment; false if someone holds it.
    pub fn reserve(&self, ip: IpAddr, container_id: &str, ifname: &str) -> io::Result<bool> {
        write_new(&self.dir.join(ip.to_string()), &format!("{container_id}\r\n{ifname}"))
    }

    /// Who holds `ip`; ("", "") when its reservation file was cut short.
    pub fn holder(&self, ip: IpAddr) -> io::Result<Option<(String, String)>> {
        match fs::read_to_string(self.dir.join(ip.to_string())) {
            Ok(s) => {
                let mut parts = s.splitn(2, "\r\n");
                let id = parts.next().unwrap_or_default().trim().to_string();
                Ok(Some((id, parts.next().unwrap_or_default().trim().to_string())))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Frees `ip` only if this attachment holds it.
    pub fn release_ip(&self, ip: IpAddr, container_id: &str, ifname: &str) -> io::Result<()> {
        match self.holder(ip)? {
            Some((id, ifn)) if id == container_id && ifn == ifname => remove_if_present(&self.dir.join(ip.to_string())),
            _ => Ok(()),
        }
    }

    /// Written in place, not through a temporary and a rename: the index is
    /// new (ADD checked there is none) and the reservation files are the
    /// truth GC falls back on, so a torn index costs nothing.
    pub fn write_index(&self, container_id: &str, ifname: &str, ips: &[IpAddr]) -> io::Result<()> {
        let path = self.index_path(container_id, ifname);
        let mut body = format!("{ID_LINE}{container_id}\n");
        body.extend(ips.iter().map(|ip| format!("{ip}\n")));
        let f = private_file::open(&path, OpenOptions::new().write(true).create(true).truncate(true))?;
        fill(f, &path, &body)
    }

    /// The attachment's IPs from the index, empty when it has none.
    pub fn ips_of(&self, container_id: &str, ifname: &str) -> io::Result<Vec<IpAddr>> {
        match fs::read_to_string(self.index_path(container_id, ifname)) {
            Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Rewrites the reservation of `ip` for its holder (a file cut short by
    /// a kill or a full disk, whose holder the attachment index names).
    pub fn rewrite(&self, ip: IpAddr, container_id: &str, ifname: &str) -> io::Result<()> {
        let path = self.dir.join(ip.to_string());
        let mut f = private_file::open(&path, OpenOptions::new().write(true).create(true).truncate(true))?;
        f.write_all(format!("{container_id}\r\n{ifname}").as_bytes())
    }

    /// Frees the attachment's addresses: those its index lists that it holds,
    /// or whose reservation was cut short (the index says whose they are);
    /// without an index, those a scan finds it holding.
    pub fn release_attachment(&self, container_id: &str, ifname: &str) -> io::Result<Vec<IpAddr>> {
        let mut ips = self.ips_of(container_id, ifname)?;
        if ips.is_empty() {
            // no index: a kill between the reservations and the index, or a
            // repeated DEL; only a scan finds the former's
            let held = self.all()?.into_iter().filter(|r| r.container_id == container_id && r.ifname == ifname);
            ips = held.map(|r| r.ip).collect();
        }
        for ip in &ips {
            match self.holder(*ip)? {
                Some((id, ifn)) if id.is_empty() || (id == container_id && ifn == ifname) => {
                    remove_if_present(&self.dir.join(ip.to_string()))?
                }
                _ => {}
            }
        }
        remove_if_present(&self.index_path(container_id, ifname))?;
        Ok(ips)
    }

    pub fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        fs::read_to_string(self.dir.join(format!("last_reserved_ip.{set}"))).ok()?.trim().parse().ok()
    }

    /// Overwrites the cursor in place, padded to a fixed width: truncating a
    /// file costs about 0.4 ms on ext4 here, an in-place write 10 us.
    pub fn set_last_reserved(&self, set: usize, ip: IpAddr) -> io::Result<()> {
        let path = self.dir.join(format!("last_reserved_ip.{set}"));
        let f = private_file::open(&path, OpenOptions::new().write(true).create(true).truncate(false))?;
        f.write_all_at(format!("{ip:<40}").as_bytes(), 0)
    }

    /// Every reservation file, for GC, STATUS and a DEL without an index (a
    /// full scan, never on ADD).
    pub fn all(&self) -> io::Result<BTreeSet<Reservation>> {
        let mut out = BTreeSet::new();
        let entries = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            r => r?,
        };
        for entry in entries {
            let entry = entry?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) else {
                continue;
            };
            if let Some((container_id, ifname)) = self.holder(ip)? {
                out.insert(Reservation { ip, container_id, ifname });
            }
        }
        Ok(out)
    }
}

impl DiskStore {
    /// Attachments that have an index file: (containerID, ifname).
    pub fn indexed(&self) -> io::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let root = self.dir.join("attachments");
        let Ok(ifdirs) = fs::read_dir(&root) else {
            return Ok(out);
        };
        for ifdir in ifdirs {
            let ifdir = ifdir?;
            let ifname = ifdir.file_name().to_string_lossy().into_owned();
            for f in fs::read_dir(ifdir.path())? {
                let f = f?;
                let name = f.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") {
                    continue;
                }
                // a hashed name stands for a longer ID, which the file holds
                let id = if is_hashed_id_file_name(&name) {
                    let body = fs::read_to_string(f.path())?;
                    body.lines().find_map(|l| l.strip_prefix(ID_LINE)).map_or(name, str::to_string)
                } else {
                    name
                };
                out.push((id, ifname.clone()));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn temp_store(tag: &str) -> (DiskStore, PathBuf) {
        let root = std::env::temp_dir().join(format!("wv-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        (DiskStore::open(root.to_str().unwrap(), "net"), root)
    }

    #[test]
    fn reserve_is_exclusive_and_release_checks_the_holder() {
        let (s, root) = temp_store("excl");
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(s.reserve(ip, "a", "eth0").unwrap());
        assert!(!s.reserve(ip, "b", "eth0").unwrap());
        s.release_ip(ip, "b", "eth0").unwrap();
        assert_eq!(s.holder(ip).unwrap(), Some(("a".into(), "eth0".into())));
        s.release_ip(ip, "a", "eth0").unwrap();
        assert_eq!(s.holder(ip).unwrap(), None);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn index_finds_and_releases_an_attachment() {
        let (s, root) = temp_store("index");
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        for ip in &ips {
            s.reserve(*ip, "a", "eth0").unwrap();
        }
        s.write_index("a", "eth0", &ips).unwrap();
        assert_eq!(s.ips_of("a", "eth0").unwrap(), ips);
        assert_eq!(s.indexed().unwrap(), vec![("a".to_string(), "eth0".to_string())]);
        assert_eq!(s.release_attachment("a", "eth0").unwrap(), ips);
        assert!(s.all().unwrap().is_empty());
        assert!(s.indexed().unwrap().is_empty());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn an_attachment_without_index_is_released_by_a_scan() {
        let (s, root) = temp_store("noindex");
        let ips: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        for ip in &ips {
            s.reserve(*ip, "a", "eth0").unwrap();
        }
        s.reserve("10.0.0.3".parse().unwrap(), "b", "eth0").unwrap();
        assert_eq!(s.release_attachment("a", "eth0").unwrap(), ips);
        assert_eq!(s.all().unwrap().len(), 1, "b keeps its address");
        assert!(DiskStore::open(root.to_str().unwrap(), "never").release_attachment("a", "eth0").unwrap().is_empty());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_long_container_id_is_indexed_under_a_name_that_fits() {
        let (s, root) = temp_store("long");
        let id = "x".repeat(400);
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        s.write_index(&id, "eth0", &[ip]).unwrap();
        assert_eq!(s.ips_of(&id, "eth0").unwrap(), [ip]);
        assert_eq!(s.indexed().unwrap(), vec![(id.clone(), "eth0".to_string())]);
        s.release_attachment(&id, "eth0").unwrap();
        assert!(s.indexed().unwrap().is_empty());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_reservation_cut_short_is_released_by_the_attachment_its_index_names() {
        let (s, root) = temp_store("cut");
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        s.reserve(ip, "a", "eth0").unwrap();
        s.write_index("a", "eth0", &[ip]).unwrap();
        fs::write(s.dir.join(ip.to_string()), b"").unwrap();
        assert_eq!(s.holder(ip).unwrap(), Some((String::new(), String::new())));
        s.release_ip(ip, "b", "eth0").unwrap();
        assert!(s.holder(ip).unwrap().is_some(), "not b's to release");
        s.release_attachment("a", "eth0").unwrap();
        assert_eq!(s.holder(ip).unwrap(), None);
        fs::remove_dir_all(root).unwrap();
    }
}
