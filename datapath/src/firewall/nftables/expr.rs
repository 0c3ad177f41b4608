//! nftables rule expressions as nft's JSON (libnftables-json) spells them,
//! in the form `nft -j list` (1.0.6) prints, so rules compare as data.

use ipnet::IpNet;
use serde_json::{json, Value};

pub fn payload(protocol: &str, field: &str) -> Value {
    json!({"payload": {"protocol": protocol, "field": field}})
}

/// `@base,offset,len`: raw bits of a header (offset and length in bits).
pub fn raw_payload(base: &str, offset: u32, len: u32) -> Value {
    json!({"payload": {"base": base, "offset": offset, "len": len}})
}

pub fn meta(key: &str) -> Value {
    json!({"meta": {"key": key}})
}

/// `fib daddr type`
pub fn fib_daddr_type() -> Value {
    json!({"fib": {"result": "type", "flags": ["daddr"]}})
}

/// A reference to a named set or map.
pub fn set(name: &str) -> Value {
    json!(format!("@{name}"))
}

pub fn concat(items: Vec<Value>) -> Value {
    json!({"concat": items})
}

/// An address prefix as nft prints it: a host prefix is a plain address.
pub fn prefix(net: &IpNet) -> Value {
    if net.prefix_len() == net.max_prefix_len() {
        json!(net.addr().to_string())
    } else {
        json!({"prefix": {"addr": net.network().to_string(), "len": net.prefix_len()}})
    }
}

fn matches(op: &str, left: Value, right: Value) -> Value {
    json!({"match": {"op": op, "left": left, "right": right}})
}

pub fn eq(left: Value, right: Value) -> Value {
    matches("==", left, right)
}

pub fn ne(left: Value, right: Value) -> Value {
    matches("!=", left, right)
}

pub fn gt(left: Value, right: Value) -> Value {
    matches(">", left, right)
}

/// `ct status dnat`: the connection was DNATed.
pub fn ct_dnat() -> Value {
    matches("in", json!({"ct": {"key": "status"}}), json!("dnat"))
}

/// `meta mark & bits == bits`
pub fn mark_has(bits: u32) -> Value {
    eq(json!({"&": [meta("mark"), bits]}), json!(bits))
}

/// `meta mark set meta mark | bits`: other owners' bits survive.
pub fn mark_or(bits: u32) -> Value {
    json!({"mangle": {"key": meta("mark"), "value": {"|": [meta("mark"), bits]}}})
}

/// `dnat <family> to <key> map @<map>`
pub fn dnat_map(family: &str, key: Vec<Value>, map: &str) -> Value {
    json!({"dnat": {"family": family, "addr": {"map": {"key": concat(key), "data": set(map)}}}})
}

/// An anonymous counter, as `nft -s` (stateless) lists it.
pub fn counter() -> Value {
    json!({"counter": null})
}

pub fn jump(chain: &str) -> Value {
    json!({"jump": {"target": chain}})
}

pub fn verdict(v: &str) -> Value {
    json!({ v: null })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_print_as_nft_prints_them() {
        assert_eq!(prefix(&"10.22.0.0/16".parse().unwrap()), json!({"prefix": {"addr": "10.22.0.0", "len": 16}}));
        assert_eq!(prefix(&"10.22.0.7/32".parse().unwrap()), json!("10.22.0.7"));
        assert_eq!(prefix(&"fd22::/64".parse().unwrap()), json!({"prefix": {"addr": "fd22::", "len": 64}}));
    }
}
