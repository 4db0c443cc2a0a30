//! ACL schemes and permission checks: world, auth, digest, ip (with CIDR), x509, super.
//!
//! This module owns the rules of ZooKeeper's `ZooKeeperServer.checkACL`,
//! `PrepRequestProcessor.fixupACL` and the `digest` / `ip` / `x509` authentication providers.
//! (The x509 id itself, a certificate's subject DN, is rendered by `server::tls` from the
//! handshake.)

use base64::Engine;
use ferrokeeper_proto::{Acl, Code, Id};
use sha1::{Digest, Sha1};

/// The auth providers registered besides the built-in `ip`, `digest` and `x509` ones, as
/// ZooKeeper's `ProviderRegistry` holds them (`authProvider.N` / `zookeeper.authProvider.N`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Providers {
    /// `SASLAuthenticationProvider` is registered: `sasl` ACL ids are valid, match a
    /// connection's `sasl` id and stand in for `auth`; whoAmI names the user. Without it a
    /// connection may still hold a `sasl` id (ZooKeeper adds it after any SASL login), which
    /// then matches nothing.
    pub sasl: bool,
    /// `zookeeper.letAnySaslUserDoX`: an ACL id (`sasl:<this>`) that every `sasl` id matches.
    pub let_any_sasl_user_do_x: Option<String>,
}

/// No provider beyond the built-in ones.
pub const BUILT_IN: Providers = Providers { sasl: false, let_any_sasl_user_do_x: None };

/// `user:BASE64(SHA1("user:password"))` for `user:password`, as DigestAuthenticationProvider.
pub fn digest(user_password: &str) -> String {
    // The user part is everything before the first colon, as Java's `split(":", 2)`.
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// Handles an `auth` packet: the ids the connection gains, or AuthFailed.
/// `digest` → `digest:<digest(auth)>` (plus `super:` if it equals `super_digest`, given as
/// `super:<base64>`); `ip` → `ip:<client_ip>`; any other scheme → AuthFailed. A null `auth`
/// buffer fails digest (ZooKeeper's provider throws on it) and is ignored by ip.
pub fn authenticate(
    scheme: &str,
    auth: Option<&[u8]>,
    client_ip: &str,
    super_digest: Option<&str>,
) -> Result<Vec<Id>, Code> {
    match scheme {
        "digest" => {
            let Some(auth) = auth else { return Err(Code::AuthFailed) };
            // Java decodes the bytes with the platform charset (UTF-8); invalid bytes become
            // replacement characters rather than failing.
            let text = String::from_utf8_lossy(auth);
            let d = digest(&text);
            let mut ids = Vec::new();
            // The super id comes first, as DigestAuthenticationProvider adds it first.
            if super_digest == Some(d.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", &d));
            Ok(ids)
        }
        "ip" => Ok(vec![Id::new("ip", client_ip)]),
        _ => Err(Code::AuthFailed),
    }
}

/// The ids a client certificate's subject DN gives its connection, as ZooKeeper's
/// X509AuthenticationProvider: `x509:<dn>`, preceded by `super:<dn>` when the DN equals
/// `X509AuthenticationProvider.superUser`.
pub fn x509_ids(subject_dn: &str, super_user: Option<&str>) -> Vec<Id> {
    let mut ids = Vec::with_capacity(2);
    if super_user == Some(subject_dn) {
        ids.push(Id::new("super", subject_dn));
    }
    ids.push(Id::new("x509", subject_dn));
    ids
}

/// `addauth x509 …`: ZooKeeper's provider authenticates the connection's certificate again,
/// ignoring the packet, so a connection that has its certificate's ids gets them again (a
/// no-op) and one without a certificate fails (AuthFailed; ZooKeeper's provider throws there).
pub fn x509_addauth(current: &[Id]) -> Result<Vec<Id>, Code> {
    let ids: Vec<Id> = current.iter().filter(|id| id.scheme == "x509").cloned().collect();
    if ids.is_empty() { Err(Code::AuthFailed) } else { Ok(ids) }
}

/// A new connection's ids: `ip:<address>` (every ZooKeeper ServerCnxn starts with it) and the
/// ids its TLS handshake gave it, in ZooKeeper's auth-info set order.
pub fn connection_ids(client_ip: &str, tls_ids: Vec<Id>) -> Vec<Id> {
    let mut ids = Vec::with_capacity(1 + tls_ids.len());
    ids.push(Id::new("ip", client_ip));
    for id in tls_ids {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    java_set_order(&mut ids);
    ids
}

/// The attribute keywords Java's `X500Principal(String)` accepts (`AVAKeyword`'s table).
const DN_KEYWORDS: &[&str] = &[
    "CN",
    "C",
    "L",
    "S",
    "ST",
    "O",
    "OU",
    "T",
    "IP",
    "STREET",
    "DC",
    "DNQUALIFIER",
    "DNQ",
    "SURNAME",
    "GIVENNAME",
    "INITIALS",
    "GENERATION",
    "EMAIL",
    "EMAILADDRESS",
    "UID",
    "SERIALNUMBER",
];

/// X509AuthenticationProvider.isValid: whether `new X500Principal(dn)` accepts `dn`, i.e. an
/// RFC 2253 / RFC 1779 name: attribute-value assertions `type=value` joined by `+` into RDNs,
/// RDNs separated by `,` or `;`; a type is one of Java's keywords (any case) or a dotted OID
/// (optionally `OID.`-prefixed); a value is `#hex`, a quoted string or a string whose special
/// characters are escaped with `\`. The empty name is valid, as in Java.
pub fn is_valid_dn(dn: &str) -> bool {
    if dn.trim().is_empty() {
        return true;
    }
    let Some(assertions) = split_unquoted(dn, &[',', ';', '+']) else { return false };
    assertions.iter().all(|ava| is_valid_assertion(ava))
}

/// Splits at unescaped, unquoted separators; `None` on an unterminated quote or escape.
fn split_unquoted<'a>(text: &'a str, separators: &[char]) -> Option<Vec<&'a str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0usize, false, false);
    for (index, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && separators.contains(&c) {
            parts.push(&text[start..index]);
            start = index + c.len_utf8();
        }
    }
    if quoted || escaped {
        return None;
    }
    parts.push(&text[start..]);
    Some(parts)
}

fn is_valid_assertion(assertion: &str) -> bool {
    let Some((keyword, value)) = assertion.split_once('=') else { return false };
    let keyword = keyword.trim();
    let oid = keyword.strip_prefix("OID.").or_else(|| keyword.strip_prefix("oid.")).unwrap_or(keyword);
    let keyword_ok = if oid.starts_with(|c: char| c.is_ascii_digit()) {
        let arcs: Vec<&str> = oid.split('.').collect();
        arcs.len() >= 2 && arcs.iter().all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
    } else {
        DN_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(keyword))
    };
    keyword_ok && is_valid_dn_value(value.trim_start_matches(' '))
}

/// An attribute value as Java's AVA parser takes it: `#` and the hex of one whole DER value;
/// a quoted string followed by nothing but spaces; or a string in which `"`, `<` and `>` appear
/// only escaped and `\` escapes a special character (`,=+<>#;"\` or space) or a hex pair.
/// `=` and a `#` after the first character need no escape; the empty value is valid.
fn is_valid_dn_value(value: &str) -> bool {
    if let Some(hex) = value.strip_prefix('#') {
        return is_der_hex(hex.trim_end_matches(' '));
    }
    let mut chars = value.chars();
    if value.starts_with('"') {
        chars.next();
        loop {
            match chars.next() {
                None => return false,
                Some('\\') => {
                    if chars.next().is_none() {
                        return false;
                    }
                }
                Some('"') => return chars.all(|c| c == ' '),
                Some(_) => {}
            }
        }
    }
    while let Some(c) = chars.next() {
        match c {
            '"' | '<' | '>' => return false,
            '\\' => match chars.next() {
                Some(',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' | ' ') => {}
                Some(high) if high.is_ascii_hexdigit() => {
                    if !chars.next().is_some_and(|low| low.is_ascii_hexdigit()) {
                        return false;
                    }
                }
                _ => return false,
            },
            _ => {}
        }
    }
    true
}

/// Whether `hex` spells exactly one DER value (tag, length, that many content bytes).
fn is_der_hex(hex: &str) -> bool {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let bytes: Vec<u8> =
        (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
    let mut at = 1usize;
    if bytes[0] & 0x1f == 0x1f {
        // A high tag number continues while the top bit is set.
        while bytes.get(at).is_some_and(|b| b & 0x80 != 0) {
            at += 1;
        }
        at += 1;
    }
    let Some(&first) = bytes.get(at) else { return false };
    at += 1;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || at + count > bytes.len() {
            return false;
        }
        let length = bytes[at..at + count].iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
        at += count;
        length
    };
    bytes.len() - at == length
}

/// The user a `whoAmI` reply names for an id, as ZooKeeper's `AuthUtil.getUser`: the
/// provider's `getUserName` (digest: the part before the colon; ip, x509 and sasl: the id) and,
/// for a scheme without a provider (`super`, `sasl` when its provider is not registered),
/// nothing.
pub fn user_name(providers: &Providers, id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
        "ip" | "x509" => id.id.clone(),
        "sasl" if providers.sasl => id.id.clone(),
        _ => String::new(),
    }
}

/// SASLAuthenticationProvider.isValid: what `new KerberosName(id)` accepts: any name without
/// `@`, or `primary[/instance]@realm` with no further `/` or `@`.
pub fn is_valid_kerberos_name(id: &str) -> bool {
    kerberos_name(id).is_some()
}

/// A principal's parts as ZooKeeper's `KerberosName` splits it: (service, host, realm).
/// `None` for a name with `@` that does not match `([^/@]*)(/([^/@]*))?@([^/@]*)`.
pub fn kerberos_name(name: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let Some((principal, realm)) = name.split_once('@') else { return Some((name, None, None)) };
    if realm.contains(['@', '/']) {
        return None;
    }
    match principal.split_once('/') {
        None => Some((principal, None, Some(realm))),
        Some((service, host)) if !host.contains('/') => Some((service, Some(host), Some(realm))),
        Some(_) => None,
    }
}

/// Java's `String.split(regex)` for a literal one-char separator: trailing empty strings are
/// dropped, which decides whether `user:` is a valid digest id.
fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    if parts.len() == 1 && parts[0].is_empty() {
        // "".split(":") yields [""] in Java; keep it as one element.
        return parts;
    }
    parts
}

/// Parses a dotted IPv4 address as IPAuthenticationProvider.v4addr2Bytes.
fn v4_bytes(addr: &str) -> Option<Vec<u8>> {
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut out = Vec::with_capacity(4);
    for p in parts {
        // Java's Integer.parseInt accepts a leading sign; a '+' or '-' prefixed octet is
        // rare enough that rejecting non-digits is fine for out-of-range values anyway.
        let v: i64 = p.parse().ok()?;
        if !(0..=255).contains(&v) {
            return None;
        }
        out.push(v as u8);
    }
    Some(out)
}

/// Parses an IPv6 address (with `::` compression, optional trailing dotted quad).
fn v6_bytes(addr: &str) -> Option<Vec<u8>> {
    if !addr.contains(':') {
        return None;
    }
    let (head, tail) = match addr.find("::") {
        Some(i) => (&addr[..i], Some(&addr[i + 2..])),
        None => (addr, None),
    };
    let parse_groups = |s: &str| -> Option<Vec<u16>> {
        if s.is_empty() {
            return Some(Vec::new());
        }
        let mut groups = Vec::new();
        let segs: Vec<&str> = s.split(':').collect();
        for (i, seg) in segs.iter().enumerate() {
            if i + 1 == segs.len() && seg.contains('.') {
                let b = v4_bytes(seg)?;
                groups.push(u16::from(b[0]) << 8 | u16::from(b[1]));
                groups.push(u16::from(b[2]) << 8 | u16::from(b[3]));
            } else {
                if seg.is_empty() || seg.len() > 4 {
                    return None;
                }
                groups.push(u16::from_str_radix(seg, 16).ok()?);
            }
        }
        Some(groups)
    };
    let h = parse_groups(head)?;
    let groups = match tail {
        Some(t) => {
            if t.contains("::") {
                return None;
            }
            let t = parse_groups(t)?;
            if h.len() + t.len() > 7 {
                return None;
            }
            let mut g = h;
            g.resize(8 - t.len(), 0);
            g.extend(t);
            g
        }
        None => h,
    };
    if groups.len() != 8 {
        return None;
    }
    Some(groups.iter().flat_map(|g| g.to_be_bytes()).collect())
}

fn addr_bytes(addr: &str) -> Option<Vec<u8>> {
    if addr.contains(':') { v6_bytes(addr) } else { v4_bytes(addr) }
}

fn mask(b: &mut [u8], bits: usize) {
    let mut start = bits / 8;
    let mut start_mask: u8 = !(((1u16 << (8 - (bits % 8))) - 1) as u8);
    while start < b.len() {
        b[start] &= start_mask;
        start_mask = 0;
        start += 1;
    }
}

/// Splits `addr/bits`; `None` when the expression is not a valid address or prefix length.
fn parse_ip_expr(expr: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let bytes = addr_bytes(addr)?;
    let max = bytes.len() * 8;
    let bits = match bits {
        Some(b) => {
            let n: i64 = b.parse().ok()?;
            if n < 0 || n as usize > max {
                return None;
            }
            n as usize
        }
        None => max,
    };
    Some((bytes, bits))
}

/// IPAuthenticationProvider.matches: `id` is the client address, `expr` an address or CIDR.
pub fn ip_matches(id: &str, expr: &str) -> bool {
    let Some((mut acl_addr, bits)) = parse_ip_expr(expr) else {
        return false;
    };
    let Some(mut remote) = addr_bytes(id) else {
        return false;
    };
    mask(&mut acl_addr, bits);
    mask(&mut remote, bits);
    remote == acl_addr
}

/// Whether `id` is a well-formed id of `scheme` for an ACL being set (provider `isValid`).
/// Schemes without a server-side provider (including `super`, `world` with another id and
/// `sasl` unless its provider is registered) are invalid.
pub fn is_valid_id(providers: &Providers, scheme: &str, id: &str) -> bool {
    match scheme {
        "sasl" => providers.sasl && is_valid_kerberos_name(id),
        "world" => id == "anyone",
        "digest" => java_split(id, ':').len() == 2,
        "ip" => parse_ip_expr(id).is_some(),
        "x509" => is_valid_dn(id),
        _ => false,
    }
}

/// Java's `String.hashCode` (over UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The jute-generated `Id.hashCode`.
fn java_id_hash(id: &Id) -> i32 {
    let mut result: i32 = 17;
    result = result.wrapping_mul(37).wrapping_add(java_string_hash(&id.scheme));
    result.wrapping_mul(37).wrapping_add(java_string_hash(&id.id))
}

/// Reorders a connection's ids (kept in insertion order up to now) the way ZooKeeper's
/// `ServerCnxn.authInfo` — a set backed by a `ConcurrentHashMap` — iterates them: by hash
/// bucket of the current table (16 slots, doubling at 3/4 full), insertion order within a
/// bucket. Clients see this order in whoAmI and in `auth`-scheme ACL expansion.
pub fn java_set_order(ids: &mut [Id]) {
    let mut table = 16usize;
    while ids.len() >= table * 3 / 4 {
        table *= 2;
    }
    ids.sort_by_key(|id| {
        let h = java_id_hash(id);
        let spread = (h ^ ((h as u32) >> 16) as i32) & 0x7fff_ffff;
        spread as usize & (table - 1)
    });
}

/// Reorders strings (given in sorted order) the way a `java.util.HashSet<String>` built from
/// them iterates: by bucket of `String.hashCode` (spread as HashMap does) in a table sized as
/// `new HashSet<>(collection)` sizes it.
pub fn java_hash_set_order(items: &mut [String]) {
    let wanted = ((items.len() as f64 / 0.75) as usize + 1).max(16);
    let table = wanted.next_power_of_two();
    items.sort_by_key(|item| {
        let h = java_string_hash(item);
        let spread = h ^ ((h as u32) >> 16) as i32;
        spread as u32 as usize & (table - 1)
    });
}

/// Whether authenticated ids of `scheme` may stand in for the `auth` scheme. Only digest,
/// x509 and (with its provider) sasl ids are "authenticated" (`isAuthenticated()`); ip and
/// super are not.
fn is_authenticated_scheme(providers: &Providers, scheme: &str) -> bool {
    scheme == "digest" || scheme == "x509" || (scheme == "sasl" && providers.sasl)
}

/// PrepRequestProcessor.fixupACL: removes duplicates, expands `auth`, validates the rest.
pub fn fixup_acl(providers: &Providers, auth: &[Id], acls: &[Acl]) -> Result<Vec<Acl>, Code> {
    let mut uniq: Vec<&Acl> = Vec::with_capacity(acls.len());
    for a in acls {
        if !uniq.contains(&a) {
            uniq.push(a);
        }
    }
    if uniq.is_empty() {
        return Err(Code::InvalidAcl);
    }
    let mut out = Vec::new();
    for a in uniq {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            let mut any = false;
            for cid in auth {
                if is_authenticated_scheme(providers, &cid.scheme) {
                    any = true;
                    out.push(Acl { perms: a.perms, id: cid.clone() });
                }
            }
            if !any {
                return Err(Code::InvalidAcl);
            }
        } else if is_valid_id(providers, &a.id.scheme, &a.id.id) {
            out.push(a.clone());
        } else {
            return Err(Code::InvalidAcl);
        }
    }
    Ok(out)
}

/// ZooKeeperServer.checkACL: `Ok` when any ACL entry granting one of `perm`'s bits matches
/// one of the caller's ids. An empty ACL allows everything; `super` bypasses all checks.
pub fn check(providers: &Providers, skip_acl: bool, acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), Code> {
    if skip_acl || acl.is_empty() {
        return Ok(());
    }
    if auth.iter().any(|id| id.scheme == "super") {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        for cid in auth {
            if cid.scheme != a.id.scheme {
                continue;
            }
            let matched = match a.id.scheme.as_str() {
                // X509AuthenticationProvider.matches: the DN exactly (its superUser clause is
                // the `super` id the same certificate gave the connection, checked above).
                "digest" | "x509" => cid.id == a.id.id,
                "ip" => ip_matches(&cid.id, &a.id.id),
                // SASLAuthenticationProvider.matches: the same id, or the user `super`, or the
                // ACL id named by letAnySaslUserDoX.
                "sasl" if providers.sasl => {
                    cid.id == "super"
                        || cid.id == a.id.id
                        || providers.let_any_sasl_user_do_x.as_deref() == Some(a.id.id.as_str())
                }
                _ => false,
            };
            if matched {
                return Ok(());
            }
        }
    }
    Err(Code::NoAuth)
}

/// The ACL as getACL shows it to a caller without ADMIN: digest ids masked as `user:x`
/// (Java's `replaceAll(":.*", ":x")`, which cuts at the first colon).
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let id = match a.id.id.find(':') {
                    Some(i) => format!("{}:x", &a.id.id[..i]),
                    None => a.id.id.clone(),
                };
                Acl { perms: a.perms, id: Id { scheme: a.id.scheme.clone(), id } }
            } else {
                a.clone()
            }
        })
        .collect()
}

#[cfg(test)]
mod java_order_tests {
    use super::*;

    #[test]
    fn string_hash_matches_java() {
        // "hello".hashCode() == 99162322, "".hashCode() == 0 in Java.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash(""), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrokeeper_proto::op::perms;

    #[test]
    fn digest_matches_zookeeper() {
        // Value from ZooKeeper's documentation / DigestAuthenticationProvider.generateDigest.
        assert_eq!(digest("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(digest("user:"), "user:".to_owned() + &digest("user:")[5..]);
    }

    #[test]
    fn authenticate_digest_ip_super_and_unknown() {
        let ids = authenticate("digest", Some(&b"u:p"[..]), "1.2.3.4", None).expect("ok");
        assert_eq!(ids, vec![Id::new("digest", &digest("u:p"))]);
        let sup = format!("super:{}", &digest("super:test")[6..]);
        let ids = authenticate("digest", Some(&b"super:test"[..]), "1.2.3.4", Some(&sup)).expect("ok");
        assert_eq!(ids[0], Id::new("super", ""));
        assert_eq!(ids.len(), 2);
        assert_eq!(authenticate("ip", Some(&b""[..]), "1.2.3.4", None), Ok(vec![Id::new("ip", "1.2.3.4")]));
        assert_eq!(authenticate("sasl", Some(&b""[..]), "1.2.3.4", None), Err(Code::AuthFailed));
        // A null auth buffer: digest fails as ZooKeeper's provider does, ip ignores it, and a
        // null scheme (read as "") has no provider.
        assert_eq!(authenticate("digest", None, "1.2.3.4", None), Err(Code::AuthFailed));
        assert_eq!(authenticate("ip", None, "1.2.3.4", None), Ok(vec![Id::new("ip", "1.2.3.4")]));
        assert_eq!(authenticate("", Some(&b"u:p"[..]), "1.2.3.4", None), Err(Code::AuthFailed));
    }

    #[test]
    fn ip_cidr() {
        assert!(ip_matches("10.1.2.3", "10.1.2.3"));
        assert!(!ip_matches("10.1.2.4", "10.1.2.3"));
        assert!(ip_matches("10.1.2.200", "10.1.2.0/24"));
        assert!(!ip_matches("10.1.3.1", "10.1.2.0/24"));
        assert!(ip_matches("10.1.3.1", "10.1.2.0/16"));
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/33"));
        assert!(ip_matches("::1", "0:0:0:0:0:0:0:1"));
        assert!(ip_matches("fe80::1", "fe80::/16"));
        assert!(!ip_matches("fe80::1", "10.0.0.1"));
        assert!(is_valid_id(&BUILT_IN, "ip", "10.0.0.0/8"));
        assert!(!is_valid_id(&BUILT_IN, "ip", "10.0.0.0/40"));
        assert!(!is_valid_id(&BUILT_IN, "ip", "host"));
    }

    #[test]
    fn validity_of_ids() {
        assert!(is_valid_id(&BUILT_IN, "digest", "u:h"));
        assert!(is_valid_id(&BUILT_IN, "digest", ":h"));
        assert!(!is_valid_id(&BUILT_IN, "digest", "u:"));
        assert!(!is_valid_id(&BUILT_IN, "digest", "u:h:x"));
        assert!(!is_valid_id(&BUILT_IN, "world", "someone"));
        assert!(!is_valid_id(&BUILT_IN, "super", ""));
        assert!(!is_valid_id(&BUILT_IN, "x509", "cn"));
        assert!(is_valid_id(&BUILT_IN, "x509", "cn=a=b"));
        assert!(!is_valid_id(&BUILT_IN, "x509", "CN=a,"));
        assert!(!is_valid_id(&BUILT_IN, "x509", "FOO=a"));
        assert!(!is_valid_id(&BUILT_IN, "x509", "CN=\"open"));
        assert!(is_valid_id(&BUILT_IN, "x509", ""));
        assert!(is_valid_id(&BUILT_IN, "x509", "CN=client,OU=Test,O=ferrokeeper"));
        assert!(is_valid_id(&BUILT_IN, "x509", "cn=a+uid=b; o=\"Acme, Inc\""));
        assert!(is_valid_id(
            &BUILT_IN,
            "x509",
            "1.2.840.113549.1.9.1=#161161646d696e406578616d706c652e6f7267"
        ));
        assert!(is_valid_id(&BUILT_IN, "x509", "OID.2.5.4.3=x,CN=a\\,b"));
        // Java's X500Principal, case by case (valid, then invalid).
        for dn in [
            "CN=",
            "CN=#0c0154",
            "CN=a + O=b",
            "CN=\"a\" ",
            "CN=a\\41",
            "EMAIL=a@b",
            "T=x",
            " CN = a ",
            "CN=a#b",
            "1.2=a",
            "cn=a; o=b",
        ] {
            assert!(is_valid_dn(dn), "{dn}");
        }
        for dn in [
            "CN=a\"b",
            ",CN=a",
            "CN=a,,O=b",
            "CN",
            "=a",
            "CN=a\\",
            "CN=#",
            "CN=#zz",
            "CN=#0c01",
            "2=x",
            "2.5.4.3.=x",
            "CN=a+",
            "CN=\"a\"b",
            "CN=a\\zz",
            "CN=a\\4",
            "CN=a<b",
            "CN=a>b",
            "CN=a;",
            "x.y=a",
            "OID.x=a",
        ] {
            assert!(!is_valid_dn(dn), "{dn}");
        }
    }

    #[test]
    fn x509_ids_match_exactly_expand_auth_and_make_super() {
        let dn = "CN=client,O=ferrokeeper";
        let ids = connection_ids("127.0.0.1", x509_ids(dn, None));
        assert!(ids.contains(&Id::new("ip", "127.0.0.1")) && ids.contains(&Id::new("x509", dn)));
        let acl = vec![Acl::new(perms::ALL, "x509", dn)];
        assert_eq!(check(&BUILT_IN, false, &acl, perms::READ, &ids), Ok(()));
        let other = connection_ids("127.0.0.1", x509_ids("CN=other,O=ferrokeeper", None));
        assert_eq!(check(&BUILT_IN, false, &acl, perms::READ, &other), Err(Code::NoAuth));
        // The DN is compared as a string, as ZooKeeper does: another spelling does not match.
        let spaced = vec![Acl::new(perms::ALL, "x509", "CN=client, O=ferrokeeper")];
        assert_eq!(check(&BUILT_IN, false, &spaced, perms::READ, &ids), Err(Code::NoAuth));
        // x509 ids are authenticated: the `auth` scheme expands to them.
        assert_eq!(fixup_acl(&BUILT_IN, &ids, &Acl::creator_all()), Ok(acl.clone()));
        // The super user's certificate passes every check.
        let admin = x509_ids("CN=admin", Some("CN=admin"));
        assert_eq!(admin, vec![Id::new("super", "CN=admin"), Id::new("x509", "CN=admin")]);
        assert_eq!(check(&BUILT_IN, false, &acl, perms::ADMIN, &admin), Ok(()));
        assert_eq!(x509_ids(dn, Some("CN=admin")), vec![Id::new("x509", dn)]);
        assert_eq!(x509_addauth(&ids), Ok(vec![Id::new("x509", dn)]));
        assert_eq!(x509_addauth(&[Id::new("ip", "127.0.0.1")]), Err(Code::AuthFailed));
    }

    #[test]
    fn fixup_expands_auth_and_rejects_bad() {
        let d = Id::new("digest", "u:h");
        let ip = Id::new("ip", "1.2.3.4");
        let acl = fixup_acl(&BUILT_IN, &[ip.clone(), d.clone()], &Acl::creator_all()).expect("ok");
        assert_eq!(acl, vec![Acl { perms: perms::ALL, id: d }]);
        assert_eq!(fixup_acl(&BUILT_IN, &[ip], &Acl::creator_all()), Err(Code::InvalidAcl));
        assert_eq!(fixup_acl(&BUILT_IN, &[], &[]), Err(Code::InvalidAcl));
        let dup = vec![Acl::new(1, "world", "anyone"), Acl::new(1, "world", "anyone")];
        assert_eq!(fixup_acl(&BUILT_IN, &[], &dup).expect("ok").len(), 1);
    }

    #[test]
    fn check_rules() {
        let acl = vec![Acl::new(perms::READ, "digest", "u:h"), Acl::new(perms::WRITE, "ip", "10.0.0.0/8")];
        let d = vec![Id::new("digest", "u:h")];
        assert_eq!(check(&BUILT_IN, false, &acl, perms::READ, &d), Ok(()));
        assert_eq!(check(&BUILT_IN, false, &acl, perms::WRITE, &d), Err(Code::NoAuth));
        assert_eq!(check(&BUILT_IN, false, &acl, perms::WRITE, &[Id::new("ip", "10.9.9.9")]), Ok(()));
        assert_eq!(check(&BUILT_IN, false, &acl, perms::ADMIN, &[Id::new("super", "")]), Ok(()));
        assert_eq!(check(&BUILT_IN, true, &acl, perms::ADMIN, &[]), Ok(()));
        assert_eq!(check(&BUILT_IN, false, &[], perms::ADMIN, &[]), Ok(()));
        assert_eq!(check(&BUILT_IN, false, &acl, perms::READ | perms::ADMIN, &d), Ok(()));
    }

    #[test]
    fn masks_digests() {
        let acl = vec![Acl::new(1, "digest", "u:abc"), Acl::new(1, "ip", "1.2.3.4")];
        let m = mask_digests(&acl);
        assert_eq!(m[0].id.id, "u:x");
        assert_eq!(m[1].id.id, "1.2.3.4");
    }
}
