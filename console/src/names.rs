//! Kubernetes names as the API server takes them, checked before a name
//! from a URL goes into a request of the console's own: a path segment
//! such as `kube-system%2Fevents%23` must not become another resource.

/// Why `namespace` is not a namespace name (an RFC 1123 label), if it is not.
pub fn namespace_problem(namespace: &str) -> Option<String> {
    (!is_label(namespace)).then(|| {
        format!(
            "namespace {namespace:?} is not a Kubernetes namespace name (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
        )
    })
}

/// Why `name` is not a DeviceLink name (an RFC 1123 subdomain), if it is not.
pub fn name_problem(name: &str) -> Option<String> {
    let subdomain = name.len() <= 253 && name.split('.').all(is_label);
    (!subdomain).then(|| {
        format!(
            "name {name:?} is not a Kubernetes object name (at most 253 lowercase letters, digits, '-' and '.', each part between dots starting and ending with a letter or digit)"
        )
    })
}

fn is_label(s: &str) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && alphanumeric(bytes[0])
        && alphanumeric(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| alphanumeric(b) || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_api_server_takes_pass_and_others_are_told() {
        for ok in ["plant", "a", "line-7", &"n".repeat(63)] {
            assert_eq!(namespace_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "kube-system/events#",
            "Plant",
            "-plant",
            "plant-",
            "a.b",
            "..",
            &"n".repeat(64),
        ] {
            assert!(namespace_problem(bad).is_some(), "{bad:?}");
        }
        for ok in [
            "fan",
            "fan.line-7",
            "a.b.c",
            &format!("{}.{}", "a".repeat(63), "b"),
        ] {
            assert_eq!(name_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "x/events",
            "fan#",
            ".fan",
            "fan.",
            "a..b",
            "Fan",
            "%2F",
            &"a".repeat(254),
        ] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
