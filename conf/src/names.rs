//! Validation of identifiers that end up in kernel names and file paths.

use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// The spec's container ID: an alphanumeric, then alphanumerics, `_`, `.`, `-`.
pub fn validate_container_id(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    match chars.next() {
        None => return Err("is empty".into()),
        Some(c) if !c.is_ascii_alphanumeric() => return Err(format!("{id:?} must start with a letter or digit")),
        _ => {}
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("{id:?} contains {c:?}; only letters, digits, '_', '.' and '-' are allowed"));
    }
    Ok(())
}

/// Linux interface names: 1 to 15 bytes, not "." or "..", no '/', ':' or
/// whitespace; no '%' (the kernel would take it as a template: `eth%d`
/// becomes eth0); not "all" or "default" (they name the namespace-wide
/// sysctls in /proc/sys/net/*/conf/).
pub fn validate_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 15 {
        return Err(format!("{name:?} is {} bytes long; Linux allows at most 15", name.len()));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    if name == "all" || name == "default" {
        return Err(format!("{name:?} names the sysctls of every interface; pick another name"));
    }
    if name.contains('%') {
        return Err(format!("{name:?} contains '%', which the kernel takes as a name template"));
    }
    if let Some(c) = name.chars().find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(format!("{name:?} contains {c:?}, which interface names cannot hold"));
    }
    Ok(())
}

/// Longest container ID used as a file name as it is: file names stop at
/// 255 bytes, and state files add a suffix (`.json`) or a temporary's affixes.
const ID_FILE_NAME_MAX: usize = 200;

/// The file name standing for a container ID: the ID itself, or for a
/// longer one its first 64 characters, `~` (never in a valid ID) and a hash
/// of the whole. The files named so hold the full ID inside.
pub fn id_file_name(id: &str) -> Cow<'_, str> {
    if id.len() <= ID_FILE_NAME_MAX {
        return Cow::Borrowed(id);
    }
    let hash: String = Sha256::digest(id.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    Cow::Owned(format!("{}~{hash}", id.get(..64).unwrap_or_default()))
}

/// Whether a file name is a hashed one of [`id_file_name`].
pub fn is_hashed_id_file_name(name: &str) -> bool {
    name.contains('~')
}

/// Network names become directory names under the state and data dirs.
pub fn validate_network_name(name: &str) -> Result<(), String> {
    validate_container_id(name).map_err(|why| format!("network name {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        for ok in ["abc", "0a_b.c-d", "A"] {
            assert!(validate_container_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "../x", "a;b", "é"] {
            assert!(validate_container_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_ids_get_file_names_that_fit_and_differ() {
        assert_eq!(id_file_name("abc"), "abc");
        let (a, b) = ("a".repeat(300), format!("{}b", "a".repeat(299)));
        let (fa, fb) = (id_file_name(&a), id_file_name(&b));
        assert!(fa.len() + ".json".len() < 255 && is_hashed_id_file_name(&fa));
        assert_ne!(fa, fb);
        assert!(!is_hashed_id_file_name(&id_file_name(&"c".repeat(200))));
    }

    #[test]
    fn ifnames() {
        for ok in ["eth0", "net1", "a-b_c.d@e", "123456789012345"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "eth 0", "eth:0", "1234567890123456", "eth%d", "all", "default"] {
            assert!(validate_ifname(bad).is_err(), "{bad}");
        }
    }
}
