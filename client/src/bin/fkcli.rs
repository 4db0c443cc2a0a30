//! `fkcli`: a zkCli-compatible shell for ferrokeeper and ZooKeeper.
//!
//! ```text
//! fkcli [-server host:port[,host:port...][/chroot]] [-timeout ms]
//!       [-client-configuration FILE] [-Dname=value ...] [cmd args...]
//! ```
//! TLS as zkCli: `-Dzookeeper.client.secure=true` and the `zookeeper.ssl.*` client properties,
//! given as `-D` arguments, as `-D` flags in `CLIENT_JVMFLAGS` (what zkCli.sh passes to Java),
//! or as lines of the `-client-configuration` properties file (which wins, as in ZooKeeper's
//! ZKClientConfig). SASL DIGEST-MD5 as zkCli: `-Djava.security.auth.login.config=FILE` with a JAAS
//! `Client` section holding `username` and `password` (`zookeeper.sasl.clientconfig` names
//! another section, `zookeeper.sasl.client=false` turns it off).
//! With a command it runs that one command and exits (status 1 on error). Without one it reads
//! commands interactively (line editing and history) or, when stdin is not a terminal, one
//! per line from stdin (status 1 if any failed).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrokeeper_client::cli::{Outcome, Shell};
use ferrokeeper_client::{EventType, Events};

struct Options {
    server: String,
    timeout: Duration,
    command: Vec<String>,
    /// Client properties in the order they apply (later wins).
    properties: Vec<(String, String)>,
}

/// `-Dname=value` as a property; `None` for anything else.
fn define(arg: &str) -> Option<(String, String)> {
    let (name, value) = arg.strip_prefix("-D")?.split_once('=').unwrap_or((&arg[2..], ""));
    Some((name.to_owned(), value.to_owned()))
}

/// The `key=value` (or `key: value`) lines of a Java properties file; `#` and `!` comment.
fn properties_file(path: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("-client-configuration {path}: {e}"))?;
    let mut properties = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']).map(|i| (&line[..i], &line[i + 1..]));
        let (key, value) = split.unwrap_or((line, ""));
        properties.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(properties)
}

fn parse_args() -> Result<Options, String> {
    let mut server = "localhost:2181".to_owned();
    let mut timeout = Duration::from_secs(30);
    let mut args = std::env::args().skip(1).peekable();
    let mut command = Vec::new();
    let mut properties: Vec<(String, String)> =
        std::env::var("CLIENT_JVMFLAGS").unwrap_or_default().split_whitespace().filter_map(define).collect();
    let mut file = None;
    while let Some(a) = args.next() {
        if let Some(property) = define(&a) {
            properties.push(property);
            continue;
        }
        match a.as_str() {
            "-client-configuration" => file = Some(args.next().ok_or("-client-configuration needs a file")?),
            "-server" => server = args.next().ok_or("-server needs host:port")?,
            "-timeout" => {
                let ms: u64 = args.next().ok_or("-timeout needs ms")?.parse().map_err(|_| "bad -timeout")?;
                timeout = Duration::from_millis(ms);
            }
            "-h" | "--help" => {
                println!(
                    "usage: fkcli [-server host:port[/chroot]] [-timeout ms] [-client-configuration file] \
                     [-Dname=value ...] [cmd args...]"
                );
                println!("{}", ferrokeeper_client::cli::usage());
                std::process::exit(0);
            }
            "-r" => {}
            _ => {
                command.push(a);
                command.extend(args.by_ref());
            }
        }
    }
    if let Some(file) = file {
        properties.extend(properties_file(&file)?);
    }
    Ok(Options { server, timeout, command, properties })
}

/// Prints watch events as zkCli does, while `printing` is set.
fn spawn_printer(rt: &tokio::runtime::Runtime, mut events: Events, printing: Arc<AtomicBool>, states: bool) {
    rt.spawn(async move {
        while let Some(event) = events.recv().await {
            if !printing.load(Ordering::Relaxed) || (!states && event.event_type == EventType::None) {
                continue;
            }
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "\nWATCHER::\n\n{event}");
            let _ = out.flush();
        }
    });
}

fn report(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Ok(s) if !s.is_empty() => {
            println!("{s}");
            true
        }
        Outcome::Ok(_) | Outcome::Quit => true,
        Outcome::Err(e) => {
            eprintln!("{e}");
            false
        }
    }
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            std::process::exit(2);
        }
    };
    let mut shell = Shell::new(&opts.server, opts.timeout);
    let properties = opts.properties.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    match ferrokeeper_client::TlsOptions::from_properties(properties.clone()) {
        Ok(tls) => shell.set_tls(tls),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    match ferrokeeper_client::SaslOptions::from_properties(properties) {
        Ok(sasl) => shell.set_sasl(sasl),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    let printing = Arc::new(AtomicBool::new(true));
    let one_shot = !opts.command.is_empty();
    if !one_shot {
        println!("Connecting to {}", opts.server);
    }
    let events = match rt.block_on(shell.connect()) {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("Connection failed: {e}");
            std::process::exit(1);
        }
    };
    spawn_printer(&rt, events, printing.clone(), !one_shot);
    let code = if one_shot {
        let line = opts.command.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ");
        let ok = report(&rt.block_on(shell.execute(&line)));
        rt.block_on(shell.close());
        if ok { 0 } else { 1 }
    } else if std::io::stdin().is_terminal() {
        interactive(&rt, &mut shell, &printing)
    } else {
        piped(&rt, &mut shell, &printing)
    };
    rt.block_on(shell.close());
    rt.shutdown_timeout(Duration::from_millis(200));
    std::process::exit(code);
}

/// Re-quotes an argv element so the shell tokenizer gives it back unchanged.
fn quote(a: &str) -> String {
    if !a.is_empty() && !a.chars().any(|c| c.is_whitespace() || c == '"' || c == '\'') {
        return a.to_owned();
    }
    if a.contains('\'') { format!("\"{a}\"") } else { format!("'{a}'") }
}

/// Handles `connect` (which needs a new event printer); other lines go to the shell.
fn run_line(
    rt: &tokio::runtime::Runtime,
    shell: &mut Shell,
    printing: &Arc<AtomicBool>,
    line: &str,
) -> Outcome {
    let tokens = ferrokeeper_client::cli::format::tokenize(line);
    if tokens.first().map(String::as_str) == Some("connect") {
        let server = tokens.get(1).cloned().unwrap_or_else(|| shell.server().to_owned());
        return match rt.block_on(shell.connect_to(&server)) {
            Ok(events) => {
                spawn_printer(rt, events, printing.clone(), true);
                Outcome::Ok(String::new())
            }
            Err(e) => Outcome::Err(e),
        };
    }
    let outcome = rt.block_on(shell.execute(line));
    printing.store(shell.print_watches, Ordering::Relaxed);
    outcome
}

fn piped(rt: &tokio::runtime::Runtime, shell: &mut Shell, printing: &Arc<AtomicBool>) -> i32 {
    let mut failed = false;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let outcome = run_line(rt, shell, printing, &line);
        failed |= !report(&outcome);
        if outcome == Outcome::Quit {
            break;
        }
    }
    i32::from(failed)
}

fn interactive(rt: &tokio::runtime::Runtime, shell: &mut Shell, printing: &Arc<AtomicBool>) -> i32 {
    let mut editor = match rustyline::DefaultEditor::new() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("line editor unavailable ({e}); reading stdin");
            return piped(rt, shell, printing);
        }
    };
    loop {
        let prompt = format!("[zk: {}({}) {}] ", shell.server(), shell.state_name(), shell.command_count());
        match editor.readline(&prompt) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let outcome = run_line(rt, shell, printing, &line);
                report(&outcome);
                if outcome == Outcome::Quit {
                    return 0;
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => return 0,
        }
    }
}
