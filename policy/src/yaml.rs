//! YAML from a JSON value, block style, keys in the value's (sorted) order:
//! the same policy always gives the same bytes. Strings that YAML could read
//! as something else are double-quoted (JSON's quoting is valid YAML).

use serde_json::Value;

pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => map(m, 0, &mut out),
        Value::Array(a) if !a.is_empty() => list(a, 0, &mut out),
        _ => {
            out += &scalar(v);
            out.push('\n');
        }
    }
    out
}

fn map(m: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in m {
        out.extend(std::iter::repeat_n(' ', indent));
        entry(k, v, indent, out);
    }
}

/// `key: value` where the key's indentation is already written.
fn entry(k: &str, v: &Value, indent: usize, out: &mut String) {
    out.push_str(&string(k));
    out.push(':');
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map(m, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            list(a, indent + 2, out);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

fn list(a: &[Value], indent: usize, out: &mut String) {
    for v in a {
        out.extend(std::iter::repeat_n(' ', indent));
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.extend(std::iter::repeat_n(' ', indent + 2));
                    }
                    entry(k, v, indent + 2, out);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                list(inner, indent + 2, out);
            }
            _ => {
                out.push_str(&scalar(v));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => string(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => other.to_string(),
    }
}

fn string(s: &str) -> String {
    let plain = s.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "nan" | "inf"
        );
    if plain {
        return s.to_string();
    }
    // JSON's quoting, and YAML's escapes for what YAML may not hold raw
    let mut out = String::with_capacity(s.len() + 2);
    for c in Value::String(s.to_string()).to_string().chars() {
        match c {
            '\u{7f}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_reads_back_as_the_same_value() {
        let v = json!({
            "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": "a", "annotations": {"weavice.io/x": "3 flows: 2026-11-28T10:00:00Z", "n": "no", "e": ""}},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [],
                "egress": [{"to": [{"ipBlock": {"cidr": "203.0.113.2/32"}}, {"podSelector": {"matchLabels": {"app": "db", "tier": "1"}}}],
                            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 8080, "endPort": 8082, "protocol": "TCP"}]}],
                "nested": [[1, "x y"], []], "odd": "del\u{7f} c1\u{85} bom\u{feff} nul\u{0}"}
        });
        let text = to_yaml(&v);
        let back: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, v, "{text}");
        assert!(text.contains("  podSelector: {}\n"), "{text}");
    }
}
