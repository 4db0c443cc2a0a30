//! The `fkcli` shell: zkCli's commands, flags and output formats over [`crate::ZooKeeper`].
//!
//! [`Shell::execute`] runs one command line and returns what to print; the binary
//! (`src/bin/fkcli.rs`) adds line editing, piping and one-shot mode around it.

pub mod format;

use std::time::Duration;

use ferrokeeper_proto::op::CreateMode;

use crate::{Acl, AddWatchMode, Code, Error, Events, SaslOptions, TlsOptions, WatcherType, ZooKeeper};

/// zkCli's usage lines, in its order.
pub const USAGE: &[(&str, &str)] = &[
    (
        "addWatch",
        "addWatch [-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "addauth scheme auth"),
    ("close", "close "),
    ("config", "config [-c] [-w] [-s]"),
    ("connect", "connect host:port"),
    ("create", "create [-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "delete [-v version] path"),
    ("deleteall", "deleteall path [-b batch size]"),
    ("get", "get [-s] [-w] path"),
    ("getAcl", "getAcl [-s] path"),
    ("getAllChildrenNumber", "getAllChildrenNumber path"),
    ("getEphemerals", "getEphemerals path"),
    ("history", "history "),
    ("ls", "ls [-s] [-w] [-R] path"),
    ("printwatches", "printwatches on|off"),
    ("quit", "quit "),
    ("redo", "redo cmdno"),
    ("removewatches", "removewatches path [-c|-d|-a] [-l]"),
    ("set", "set [-s] [-v version] path data"),
    ("setAcl", "setAcl [-s] [-v version] [-R] path acl"),
    ("stat", "stat [-w] path"),
    ("sync", "sync path"),
    ("version", "version "),
    ("whoami", "whoami "),
];

/// The full usage text zkCli prints for an unknown command.
pub fn usage() -> String {
    let mut s = String::from("ZooKeeper -server host:port -client-configuration properties-file cmd args");
    for (_, line) in USAGE {
        s.push_str("\n\t");
        s.push_str(line);
    }
    s
}

fn usage_of(cmd: &str) -> String {
    USAGE.iter().find(|(c, _)| *c == cmd).map(|(_, u)| (*u).to_owned()).unwrap_or_default()
}

/// What a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Success; the text to print on stdout (may be empty).
    Ok(String),
    /// Failure; the one-line message to print on stderr.
    Err(String),
    /// `quit`.
    Quit,
}

/// Parsed flags and positional arguments of one command.
struct Args {
    flags: Vec<(char, Option<String>)>,
    pos: Vec<String>,
}

impl Args {
    /// Splits `tokens` into flags (those in `with_value` take the next token) and positionals.
    fn parse(tokens: &[String], flags: &str, with_value: &str) -> Result<Args, String> {
        let mut out = Args { flags: Vec::new(), pos: Vec::new() };
        let mut it = tokens.iter();
        while let Some(t) = it.next() {
            let mut chars = t.chars();
            if t.len() == 2 && chars.next() == Some('-') {
                let c = chars.next().unwrap_or('-');
                if with_value.contains(c) {
                    let v = it.next().ok_or_else(|| format!("Missing argument for option: {c}"))?;
                    out.flags.push((c, Some(v.clone())));
                    continue;
                }
                if flags.contains(c) {
                    out.flags.push((c, None));
                    continue;
                }
                return Err(format!("Unrecognized option: {t}"));
            }
            out.pos.push(t.clone());
        }
        Ok(out)
    }

    fn has(&self, c: char) -> bool {
        self.flags.iter().any(|(f, _)| *f == c)
    }

    fn value(&self, c: char) -> Option<&str> {
        self.flags.iter().find(|(f, _)| *f == c).and_then(|(_, v)| v.as_deref())
    }
}

/// The shell's state: the connection and the command history.
pub struct Shell {
    zk: Option<ZooKeeper>,
    server: String,
    timeout: Duration,
    history: Vec<String>,
    /// Whether watch events are printed (`printwatches`).
    pub print_watches: bool,
    /// TLS for every (re)connect; `None`: plain.
    tls: Option<TlsOptions>,
    sasl: Option<SaslOptions>,
}

impl Shell {
    /// A shell that is not connected yet.
    pub fn new(server: &str, timeout: Duration) -> Shell {
        Shell {
            zk: None,
            server: server.to_owned(),
            timeout,
            history: Vec::new(),
            print_watches: true,
            tls: None,
            sasl: None,
        }
    }

    /// Connects with TLS from now on (zkCli's `-Dzookeeper.client.secure=true` and
    /// `zookeeper.ssl.*`, read by [`TlsOptions::from_properties`]).
    pub fn set_tls(&mut self, tls: Option<TlsOptions>) {
        self.tls = tls;
    }

    /// Logs in with SASL DIGEST-MD5 from now on (zkCli's `-Djava.security.auth.login.config`
    /// with a JAAS `Client` section, read by [`SaslOptions::from_properties`]).
    pub fn set_sasl(&mut self, sasl: Option<SaslOptions>) {
        self.sasl = sasl;
    }

    /// The server this shell (re)connects to.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// zkCli's prompt state: `CONNECTED`, `CLOSED`, ...
    pub fn state_name(&self) -> &'static str {
        self.zk.as_ref().map(|zk| zk.state().cli_name()).unwrap_or("CLOSED")
    }

    /// Number of the next command (for the prompt).
    pub fn command_count(&self) -> usize {
        self.history.len()
    }

    /// Connects to the current server; returns the session's event stream.
    pub async fn connect(&mut self) -> Result<Events, String> {
        if let Some(zk) = self.zk.take() {
            let _ = zk.close().await;
        }
        let (zk, events) = ZooKeeper::builder(&self.server)
            .session_timeout(self.timeout)
            .connect_timeout(self.timeout.clamp(Duration::from_secs(1), Duration::from_secs(10)))
            .tls(self.tls.clone())
            .sasl(self.sasl.clone())
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        self.zk = Some(zk);
        Ok(events)
    }

    /// Closes the session, if any.
    pub async fn close(&mut self) {
        if let Some(zk) = self.zk.take() {
            let _ = zk.close().await;
        }
    }

    fn zk(&self) -> Result<&ZooKeeper, String> {
        match &self.zk {
            Some(zk) if zk.state().is_alive() => Ok(zk),
            _ => Err("Not connected".into()),
        }
    }

    /// Runs one command line. `connect` is not handled here (see [`Shell::connect_to`]).
    pub async fn execute(&mut self, line: &str) -> Outcome {
        let tokens = format::tokenize(line);
        if tokens.is_empty() {
            return Outcome::Ok(String::new());
        }
        self.history.push(line.trim().to_owned());
        self.run(&tokens).await
    }

    /// `connect host:port`: switches server; the caller re-subscribes to the new events.
    pub async fn connect_to(&mut self, server: &str) -> Result<Events, String> {
        self.server = server.to_owned();
        self.connect().await
    }

    async fn run(&mut self, tokens: &[String]) -> Outcome {
        let cmd = tokens[0].as_str();
        let rest = &tokens[1..];
        let result = match cmd {
            "quit" | "exit" => return Outcome::Quit,
            "version" => Ok(format!("ferrokeeper CLI version: {}", env!("CARGO_PKG_VERSION"))),
            "history" => Ok(self.history_text()),
            "printwatches" => match rest.first().map(String::as_str) {
                Some("on") => {
                    self.print_watches = true;
                    Ok(String::new())
                }
                Some("off") => {
                    self.print_watches = false;
                    Ok(String::new())
                }
                _ => Ok(format!("printwatches is {}", if self.print_watches { "on" } else { "off" })),
            },
            "redo" => {
                let line = rest
                    .first()
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| self.history.get(n))
                    .cloned();
                match line {
                    Some(line) => {
                        let tokens = format::tokenize(&line);
                        self.history.push(line);
                        return Box::pin(self.run(&tokens)).await;
                    }
                    None => Err("Command index out of range".into()),
                }
            }
            "close" => {
                self.close().await;
                Ok(String::new())
            }
            _ => self.zk_command(cmd, rest).await,
        };
        match result {
            Ok(s) => Outcome::Ok(s),
            Err(e) => Outcome::Err(e),
        }
    }

    fn history_text(&self) -> String {
        let start = self.history.len().saturating_sub(11);
        let lines: Vec<String> =
            self.history.iter().enumerate().skip(start).map(|(i, l)| format!("{i} - {l}")).collect();
        lines.join("\n")
    }

    async fn zk_command(&mut self, cmd: &str, rest: &[String]) -> Result<String, String> {
        let (flags, with_value, min, max) = match cmd {
            "create" => ("sec", "t", 1, 3),
            "ls" => ("swR", "", 1, 1),
            "get" => ("swbx", "", 1, 1),
            "set" => ("sb", "v", 2, 2),
            "delete" => ("", "v", 1, 1),
            "deleteall" => ("", "b", 1, 1),
            "stat" => ("w", "", 1, 1),
            "getAcl" => ("s", "", 1, 1),
            "setAcl" => ("sR", "v", 2, 2),
            "addauth" => ("", "", 1, 2),
            "addWatch" => ("", "m", 1, 1),
            "removewatches" => ("cdal", "", 1, 1),
            "sync" | "getEphemerals" | "getAllChildrenNumber" => ("", "", 1, 1),
            "whoami" => ("", "", 0, 0),
            "config" => ("cws", "", 0, 0),
            _ => return Err(format!("{}\nCommand not found: Command not found {cmd}", usage())),
        };
        let args = Args::parse(rest, flags, with_value).map_err(|e| format!("{e}\n{}", usage_of(cmd)))?;
        if args.pos.len() < min || args.pos.len() > max {
            return Err(usage_of(cmd));
        }
        let zk = self.zk()?.clone();
        let path = args.pos.first().cloned().unwrap_or_default();
        let stat_after = |r: crate::Result<crate::Stat>, show: bool| -> Result<String, String> {
            let s = r.map_err(|e| e.to_string())?;
            Ok(if show { format::stat(&s) } else { String::new() })
        };
        match cmd {
            "create" => {
                let (e, s, c, t) = (args.has('e'), args.has('s'), args.has('c'), args.value('t'));
                let ttl = match t {
                    Some(t) => Some(t.parse::<i64>().map_err(|_| format!("{t} is not a valid TTL"))?),
                    None => None,
                };
                let mode = match (e, s, c, ttl.is_some()) {
                    (_, _, true, _) if e || s => {
                        return Err("-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential."
                            .into());
                    }
                    (true, _, _, true) => return Err("TTLs cannot be used with Ephemeral znodes".into()),
                    (_, _, true, true) => return Err("TTLs cannot be used with Container znodes".into()),
                    (_, _, true, false) => CreateMode::Container,
                    (true, true, _, _) => CreateMode::EphemeralSequential,
                    (true, false, _, _) => CreateMode::Ephemeral,
                    (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
                    (false, false, _, true) => CreateMode::PersistentWithTtl,
                    (false, true, _, false) => CreateMode::PersistentSequential,
                    (false, false, _, false) => CreateMode::Persistent,
                };
                let acl = match args.pos.get(2) {
                    Some(a) => format::parse_acl(a)?,
                    None => Acl::open_unsafe(),
                };
                let data = args.pos.get(1).map(String::as_bytes);
                let created =
                    zk.create_nullable(&path, data, &acl, mode, ttl).await.map_err(|e| e.to_string())?;
                Ok(format!("Created {}", created.path))
            }
            "ls" => {
                if args.has('R') {
                    return self.ls_recursive(&zk, &path).await;
                }
                let (mut kids, stat) = if args.has('w') {
                    zk.get_children2_watch(&path).await
                } else {
                    zk.get_children2(&path).await
                }
                .map_err(|e| e.to_string())?;
                kids.sort();
                let mut out = format!("[{}]", kids.join(", "));
                if args.has('s') {
                    out.push('\n');
                    out.push_str(&format::stat(&stat));
                }
                Ok(out)
            }
            "get" => {
                let (data, stat) =
                    zk.get_data_nullable(&path, args.has('w')).await.map_err(|e| e.to_string())?;
                let mut out = match data {
                    Some(d) => String::from_utf8_lossy(&d).into_owned(),
                    None => "null".to_owned(),
                };
                if args.has('s') {
                    out.push('\n');
                    out.push_str(&format::stat(&stat));
                }
                Ok(out)
            }
            "set" => {
                let version = parse_version(args.value('v'))?;
                let data = args.pos.get(1).map(String::as_bytes).unwrap_or_default();
                stat_after(zk.set_data(&path, data, version).await, args.has('s'))
            }
            "delete" => {
                let version = parse_version(args.value('v'))?;
                zk.delete(&path, version).await.map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            "deleteall" => match zk.delete_all(&path).await {
                Ok(()) => Ok(String::new()),
                Err(e) if e.code() == Code::NoNode => Err(e.to_string()),
                Err(Error::InvalidPath(m)) => Err(m),
                Err(_) => Err("Failed to delete some node(s) in the subtree!".into()),
            },
            "stat" => {
                let stat = if args.has('w') { zk.exists_watch(&path).await } else { zk.exists(&path).await }
                    .map_err(|e| e.to_string())?;
                match stat {
                    Some(s) => Ok(format::stat(&s)),
                    None => Err(Error::Keeper { code: Code::NoNode, path: Some(path) }.to_string()),
                }
            }
            "getAcl" => {
                let (acl, stat) = zk.get_acl(&path).await.map_err(|e| e.to_string())?;
                let mut out = format::acl_lines(&acl);
                if args.has('s') {
                    out.push('\n');
                    out.push_str(&format::stat(&stat));
                }
                Ok(out)
            }
            "setAcl" => {
                let version = parse_version(args.value('v'))?;
                let acl = format::parse_acl(&args.pos[1])?;
                if args.has('R') {
                    let mut paths = vec![path.clone()];
                    let mut i = 0;
                    while i < paths.len() {
                        let kids = zk.get_children(&paths[i]).await.map_err(|e| e.to_string())?;
                        let base = if paths[i] == "/" { String::new() } else { paths[i].clone() };
                        paths.extend(kids.into_iter().map(|k| format!("{base}/{k}")));
                        i += 1;
                    }
                    for p in &paths {
                        zk.set_acl(p, &acl, version).await.map_err(|e| e.to_string())?;
                    }
                    return Ok(String::new());
                }
                stat_after(zk.set_acl(&path, &acl, version).await, args.has('s'))
            }
            "addauth" => {
                let auth = args.pos.get(1).map(String::as_bytes).unwrap_or_default();
                zk.add_auth(&path, auth).await.map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            "addWatch" => {
                let mode = match args.value('m').map(str::to_ascii_lowercase).as_deref() {
                    None | Some("persistent_recursive") => AddWatchMode::PersistentRecursive,
                    Some("persistent") => AddWatchMode::Persistent,
                    Some(other) => {
                        return Err(format!(
                            "{other} is not a valid mode. Valid modes are: [PERSISTENT, PERSISTENT_RECURSIVE]"
                        ));
                    }
                };
                zk.add_watch(&path, mode).await.map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            "removewatches" => {
                let kind = if args.has('c') {
                    WatcherType::Children
                } else if args.has('d') {
                    WatcherType::Data
                } else {
                    WatcherType::Any
                };
                zk.remove_watches(&path, kind).await.map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            "sync" => {
                zk.sync(&path).await.map_err(|e| e.to_string())?;
                Ok("Sync is OK".into())
            }
            "getEphemerals" => {
                let mut eph = zk.get_ephemerals(&path).await.map_err(|e| e.to_string())?;
                eph.sort();
                Ok(format!("[{}]", eph.join(", ")))
            }
            "getAllChildrenNumber" => {
                zk.get_all_children_number(&path).await.map(|n| n.to_string()).map_err(|e| e.to_string())
            }
            "config" => {
                let (data, stat) = zk.get_config(args.has('w')).await.map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&data).into_owned();
                let mut out = if args.has('c') { format::client_config(&text) } else { text };
                if args.has('s') {
                    out.push('\n');
                    out.push_str(&format::stat(&stat));
                }
                Ok(out)
            }
            "whoami" => {
                let who = zk.who_am_i().await.map_err(|e| e.to_string())?;
                let mut out = String::from("Auth scheme: User");
                for c in who {
                    out.push_str(&format!("\n{}: {}", c.auth_scheme, c.user));
                }
                Ok(out)
            }
            _ => Err(format!("Command not found: Command not found {cmd}")),
        }
    }

    async fn ls_recursive(&self, zk: &ZooKeeper, path: &str) -> Result<String, String> {
        // Depth-first, children sorted, like ZKUtil.visitSubTreeDFS.
        let mut out = Vec::new();
        let mut stack = vec![path.to_owned()];
        while let Some(p) = stack.pop() {
            let mut kids = zk.get_children(&p).await.map_err(|e| e.to_string())?;
            kids.sort();
            let base = if p == "/" { String::new() } else { p.clone() };
            for k in kids.into_iter().rev() {
                stack.push(format!("{base}/{k}"));
            }
            out.push(p);
        }
        Ok(out.join("\n"))
    }
}

fn parse_version(v: Option<&str>) -> Result<i32, String> {
    match v {
        None => Ok(-1),
        Some(v) => v.parse::<i32>().map_err(|_| format!("{v} is not a valid version")),
    }
}
