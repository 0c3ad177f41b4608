//! CNI specification versions weavice speaks, and what each allows.

use crate::error::ConfError;
use std::fmt;

/// Versions accepted in a configuration, oldest first.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const LATEST: &str = "1.1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CniVersion(u8, u8, u8);

impl CniVersion {
    pub const V0_4_0: CniVersion = CniVersion(0, 4, 0);
    pub const V1_0_0: CniVersion = CniVersion(1, 0, 0);
    pub const V1_1_0: CniVersion = CniVersion(1, 1, 0);

    pub fn parse(s: &str) -> Result<Self, ConfError> {
        let unsupported = || ConfError::UnsupportedVersion(s.to_string(), SUPPORTED.join(", "));
        if !SUPPORTED.contains(&s) {
            return Err(unsupported());
        }
        let mut parts = s.split('.').map(|p| p.parse::<u8>());
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Ok(CniVersion(a, b, c)),
            _ => Err(unsupported()),
        }
    }

    /// Results of 0.x carry an explicit IP "version" field.
    pub fn ips_carry_version(self) -> bool {
        self < Self::V1_0_0
    }

    /// Interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope.
    pub fn has_1_1_fields(self) -> bool {
        self >= Self::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_version_and_orders_them() {
        let parsed: Vec<_> = SUPPORTED.iter().map(|v| CniVersion::parse(v).unwrap()).collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(parsed.last().unwrap().to_string(), LATEST);
    }

    #[test]
    fn rejects_unknown_versions() {
        for v in ["0.2.0", "1.2.0", "", "1.0", "banana"] {
            assert!(matches!(CniVersion::parse(v), Err(ConfError::UnsupportedVersion(..))), "{v}");
        }
    }
}
