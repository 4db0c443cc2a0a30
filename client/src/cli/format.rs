//! zkCli output formats: stat blocks, Java `Date.toString()`, ACL and permission strings, and
//! zkCli's command-line tokenizer.

use std::fmt::Write as _;

use ferrokeeper_proto::op::perms;

use crate::{Acl, Stat};

/// Java's `Date.toString()` for a UTC timestamp in ms: `Sun Nov 22 04:24:12 UTC 2026`.
pub fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    format!(
        "{weekday} {} {d:02} {:02}:{:02}:{:02} UTC {y}",
        MONTHS[(m - 1) as usize],
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// zkCli's stat block (`cZxid = 0x…` … `numChildren = N`), one field per line.
pub fn stat(s: &Stat) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cZxid = 0x{:x}", s.czxid);
    let _ = writeln!(out, "ctime = {}", java_date(s.ctime));
    let _ = writeln!(out, "mZxid = 0x{:x}", s.mzxid);
    let _ = writeln!(out, "mtime = {}", java_date(s.mtime));
    let _ = writeln!(out, "pZxid = 0x{:x}", s.pzxid);
    let _ = writeln!(out, "cversion = {}", s.cversion);
    let _ = writeln!(out, "dataVersion = {}", s.version);
    let _ = writeln!(out, "aclVersion = {}", s.aversion);
    let _ = writeln!(out, "ephemeralOwner = 0x{:x}", s.ephemeral_owner);
    let _ = writeln!(out, "dataLength = {}", s.data_length);
    let _ = write!(out, "numChildren = {}", s.num_children);
    out
}

/// `ZKUtil.getPermString`: letters in the order c, d, r, w, a.
/// zkCli's `config -c` (ZooKeeper's `ConfigUtils.getClientConfigStr`): the version, a space,
/// then each member's `clientHost:clientPort` joined by commas (an empty entry for a member
/// without a client address, as Java writes it). Members come in the order listed.
pub fn client_config(config: &str) -> String {
    let mut version = "";
    let mut clients = Vec::new();
    for line in config.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (key.trim(), value.trim());
        if key == "version" {
            version = value;
        } else if key.starts_with("server.") {
            clients.push(value.split_once(';').map_or("", |(_, client)| client.trim()));
        }
    }
    format!("{version} {}", clients.join(","))
}

pub fn perm_string(p: i32) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ] {
        if p & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// Parses permission letters (`cdrwa` in any order).
pub fn parse_perms(s: &str) -> Option<i32> {
    let mut p = 0;
    for c in s.chars() {
        p |= match c {
            'c' | 'C' => perms::CREATE,
            'd' | 'D' => perms::DELETE,
            'r' | 'R' => perms::READ,
            'w' | 'W' => perms::WRITE,
            'a' | 'A' => perms::ADMIN,
            _ => return None,
        };
    }
    Some(p)
}

/// Parses zkCli's ACL syntax: comma-separated `scheme:id:perms` (the id may contain `:`).
pub fn parse_acl(s: &str) -> Result<Vec<Acl>, String> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (Some(first), Some(last)) = (part.find(':'), part.rfind(':')) else {
            return Err(format!("{part} does not have the form scheme:id:perm"));
        };
        if first == last {
            return Err(format!("{part} does not have the form scheme:id:perm"));
        }
        let perms = parse_perms(&part[last + 1..]).ok_or_else(|| format!("invalid permissions in {part}"))?;
        out.push(Acl::new(perms, &part[..first], &part[first + 1..last]));
    }
    if out.is_empty() {
        return Err("empty ACL".into());
    }
    Ok(out)
}

/// zkCli's getAcl lines: `'world,'anyone` then `: cdrwa`.
pub fn acl_lines(acl: &[Acl]) -> String {
    let mut out = String::new();
    for (i, a) in acl.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = write!(out, "'{},'{}\n: {}", a.id.scheme, a.id.id, perm_string(a.perms));
    }
    out
}

/// Splits a command line like zkCli: on whitespace, with `"…"` and `'…'` quoting.
pub fn tokenize(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_token = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_token = true;
            }
            None if c.is_whitespace() => {
                if in_token {
                    out.push(std::mem::take(&mut cur));
                    in_token = false;
                }
            }
            None => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if in_token {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_config_lists_client_addresses() {
        let config = "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n\
                      server.2=h2:2888:3888:observer;0.0.0.0:2182\nserver.3=h3:2888:3888:participant\nversion=1a";
        assert_eq!(super::client_config(config), "1a 127.0.0.1:2181,0.0.0.0:2182,");
        assert_eq!(super::client_config(""), " ");
    }

    use super::*;

    #[test]
    fn java_dates() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2026-11-22 04:24:12 UTC
        assert_eq!(java_date(1_795_321_452_000), "Sun Nov 22 04:24:12 UTC 2026");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }

    #[test]
    fn perms_and_acls() {
        assert_eq!(perm_string(31), "cdrwa");
        assert_eq!(perm_string(perms::READ | perms::ADMIN), "ra");
        let acl = parse_acl("world:anyone:cdrwa,digest:u:abc=:r").expect("acl");
        assert_eq!(acl[0], Acl::new(31, "world", "anyone"));
        assert_eq!(acl[1], Acl::new(perms::READ, "digest", "u:abc="));
        assert!(parse_acl("world:anyone").is_err());
        assert_eq!(acl_lines(&acl[..1]), "'world,'anyone\n: cdrwa");
    }

    #[test]
    fn tokenizes_with_quotes() {
        assert_eq!(tokenize("create /a 'hello world'"), vec!["create", "/a", "hello world"]);
        assert_eq!(tokenize("  set  /a \"x y\"  "), vec!["set", "/a", "x y"]);
        assert_eq!(tokenize("set /a ''"), vec!["set", "/a", ""]);
    }

    #[test]
    fn stat_block() {
        let s = Stat { czxid: 2, mzxid: 6, pzxid: 11, version: 1, data_length: 9, ..Default::default() };
        let text = stat(&s);
        assert!(text.starts_with("cZxid = 0x2\nctime = Thu Jan 01 00:00:00 UTC 1970\nmZxid = 0x6\n"));
        assert!(text.ends_with("ephemeralOwner = 0x0\ndataLength = 9\nnumChildren = 0"));
    }
}
