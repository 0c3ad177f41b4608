//! A table as `nft -j list` shows it, reduced to what CHECK compares: each
//! chain's rules (their expressions) and each set's or map's elements.

use super::Table;
use crate::{DatapathError, Result};
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Listing {
    rules: HashMap<String, Vec<Value>>,
    elements: HashMap<String, Vec<Value>>,
}

impl Listing {
    /// The objects of `table` in nft's JSON output (other tables are skipped).
    pub fn parse(json: &str, table: Table) -> Result<Self> {
        let bad = |why: String| DatapathError::Firewall(format!("unreadable `nft -j list` output: {why}"));
        let doc: Value = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let objects = doc.get("nftables").and_then(Value::as_array).ok_or_else(|| bad("no nftables array".into()))?;
        let mut listing = Listing::default();
        for o in objects {
            let ours = |v: &Value| v["family"] == table.family && v["table"] == table.name;
            if let Some(r) = o.get("rule").filter(|r| ours(r)) {
                let chain = r["chain"].as_str().unwrap_or_default().to_string();
                listing.rules.entry(chain).or_default().push(r["expr"].clone());
            }
            for kind in ["set", "map"] {
                if let Some(s) = o.get(kind).filter(|s| ours(s)) {
                    let elems = s["elem"].as_array().cloned().unwrap_or_default();
                    listing.elements.insert(s["name"].as_str().unwrap_or_default().to_string(), elems);
                }
            }
        }
        Ok(listing)
    }

    /// Whether `chain` holds a rule of exactly these expressions.
    pub fn has_rule(&self, chain: &str, expr: &[Value]) -> bool {
        self.rules.get(chain).is_some_and(|rules| rules.iter().any(|r| r.as_array().is_some_and(|r| r == expr)))
    }

    /// The names of its sets and maps.
    pub fn sets(&self) -> impl Iterator<Item = &str> {
        self.elements.keys().map(String::as_str)
    }

    pub fn has_element(&self, set: &str, element: &Value) -> bool {
        self.elements.get(set).is_some_and(|elems| elems.contains(element))
    }
}
