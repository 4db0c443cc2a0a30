//! Path rules of `PathUtils.validatePath`, and parent/name splitting.

/// Checks a znode path as ZooKeeper does; the error text matches ZooKeeper's message.
pub fn validate(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if !path.starts_with('/') {
        return Err("Path must start with / character".into());
    }
    if path.len() == 1 {
        return Ok(());
    }
    if path.ends_with('/') {
        return Err("Path must not end with / character".into());
    }
    // One pass over the characters with the two before and the one after in hand (no
    // allocation: this runs on every request, client and server side).
    let mut before_last = '\0';
    let mut last = '/';
    let mut rest = path.chars().skip(1).peekable();
    let mut i = 1;
    while let Some(c) = rest.next() {
        let next_is_end = matches!(rest.peek(), None | Some('/'));
        let reason = if c == '\0' {
            Some("null character not allowed")
        } else if c == '/' && last == '/' {
            Some("empty node name specified")
        } else if c == '.' && next_is_end && (last == '/' || (last == '.' && i >= 2 && before_last == '/')) {
            Some("relative paths not allowed")
        } else if is_invalid_char(c) {
            Some("invalid character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(format!("Invalid path string \"{path}\" caused by {reason} @{i}"));
        }
        before_last = last;
        last = c;
        i += 1;
    }
    Ok(())
}

fn is_invalid_char(c: char) -> bool {
    let c = c as u32;
    (0x01..=0x1f).contains(&c) || (0x7f..=0x9f).contains(&c) || (0xd800..=0xf8ff).contains(&c) || c >= 0xfff0
}

/// The parent of a valid non-root path (`/a/b` → `/a`, `/a` → `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last segment of a valid non-root path (`/a/b` → `b`).
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects_like_zookeeper() {
        for ok in ["/", "/a", "/a/b", "/a.b", "/..a", "/a/.b", "/é"] {
            assert!(validate(ok).is_ok(), "{ok}");
        }
        for bad in
            ["", "a", "/a/", "//", "/a//b", "/.", "/..", "/a/./b", "/a/../b", "/a\0", "/a\u{1}", "/\u{1F600}"]
        {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn splits_parent_and_name() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(name("/a/b/c"), "c");
    }
}
