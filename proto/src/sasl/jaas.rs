//! The JAAS login configuration file, as Java's `ConfigFile` reads it:
//!
//! ```text
//! Server {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     user_super="adminsecret"
//!     user_bob="bobsecret";
//! };
//! Client {
//!     org.apache.zookeeper.server.auth.DigestLoginModule required
//!     username="bob"
//!     password="bobsecret";
//! };
//! ```
//!
//! A section is a name and `{ entry; … };`; an entry is a login module class, a control flag
//! (`required`, `requisite`, `sufficient`, `optional`) and `key=value` options, values bare or
//! in double quotes (with `\` escapes). `//`, `/* */` and `#` comments are skipped, as Java's
//! `StreamTokenizer` there skips them. `${property}` expansion is not done: a value holding
//! `${` is refused, so a file relying on it fails loudly rather than with a literal `${…}`.

/// One login module line of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub module: String,
    pub flag: String,
    /// In file order.
    pub options: Vec<(String, String)>,
}

impl JaasEntry {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// A named section (`Server`, `Client`, `QuorumServer`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasSection {
    pub name: String,
    pub entries: Vec<JaasEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub sections: Vec<JaasSection>,
}

impl JaasConfig {
    /// The section called `name` (case-sensitive, as Java looks it up).
    pub fn section(&self, name: &str) -> Option<&JaasSection> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn parse(text: &str) -> Result<JaasConfig, String> {
        let tokens = tokenize(text)?;
        let mut at = 0usize;
        let mut sections: Vec<JaasSection> = Vec::new();
        while at < tokens.len() {
            let (name, line) = word(&tokens, &mut at, "a section name")?;
            expect(&tokens, &mut at, '{')?;
            let mut entries = Vec::new();
            while !is_punct(&tokens, at, '}') {
                let (module, _) = word(&tokens, &mut at, "a login module class or '}'")?;
                let (flag, flag_line) = word(&tokens, &mut at, "a control flag")?;
                if !["required", "requisite", "sufficient", "optional"]
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(&flag))
                {
                    return Err(format!("line {flag_line}: invalid control flag {flag:?}"));
                }
                let mut options = Vec::new();
                while !is_punct(&tokens, at, ';') {
                    let (key, key_line) = word(&tokens, &mut at, "an option or ';'")?;
                    expect(&tokens, &mut at, '=')?;
                    let value = match tokens.get(at) {
                        Some((Token::Word(v) | Token::Quoted(v), _)) => v.clone(),
                        _ => return Err(format!("line {key_line}: option {key} has no value")),
                    };
                    at += 1;
                    if value.contains("${") {
                        return Err(format!(
                            "line {key_line}: option {key}: ${{…}} expansion is not supported"
                        ));
                    }
                    options.push((key, value));
                }
                expect(&tokens, &mut at, ';')?;
                entries.push(JaasEntry { module, flag: flag.to_ascii_lowercase(), options });
            }
            expect(&tokens, &mut at, '}')?;
            expect(&tokens, &mut at, ';')?;
            if sections.iter().any(|s| s.name == name) {
                return Err(format!("line {line}: section {name} appears twice"));
            }
            sections.push(JaasSection { name, entries });
        }
        Ok(JaasConfig { sections })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Punct(char),
}

fn word(tokens: &[(Token, usize)], at: &mut usize, what: &str) -> Result<(String, usize), String> {
    match tokens.get(*at) {
        Some((Token::Word(w) | Token::Quoted(w), line)) => {
            *at += 1;
            Ok((w.clone(), *line))
        }
        Some((Token::Punct(c), line)) => Err(format!("line {line}: expected {what}, found '{c}'")),
        None => Err(format!("end of file: expected {what}")),
    }
}

fn is_punct(tokens: &[(Token, usize)], at: usize, c: char) -> bool {
    matches!(tokens.get(at), Some((Token::Punct(p), _)) if *p == c)
}

fn expect(tokens: &[(Token, usize)], at: &mut usize, c: char) -> Result<(), String> {
    match tokens.get(*at) {
        Some((Token::Punct(p), _)) if *p == c => {
            *at += 1;
            Ok(())
        }
        Some((token, line)) => Err(format!("line {line}: expected '{c}', found {token:?}")),
        None => Err(format!("end of file: expected '{c}'")),
    }
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let (mut at, mut line) = (0usize, 1usize);
    while at < chars.len() {
        let c = chars[at];
        match c {
            '\n' => {
                line += 1;
                at += 1;
            }
            c if c.is_whitespace() => at += 1,
            '/' if chars.get(at + 1) == Some(&'/') => {
                while at < chars.len() && chars[at] != '\n' {
                    at += 1;
                }
            }
            '#' => {
                while at < chars.len() && chars[at] != '\n' {
                    at += 1;
                }
            }
            '/' if chars.get(at + 1) == Some(&'*') => {
                let start = line;
                at += 2;
                loop {
                    match chars.get(at) {
                        None => return Err(format!("line {start}: unterminated comment")),
                        Some('*') if chars.get(at + 1) == Some(&'/') => {
                            at += 2;
                            break;
                        }
                        Some('\n') => line += 1,
                        Some(_) => {}
                    }
                    at += 1;
                }
            }
            '{' | '}' | ';' | '=' => {
                tokens.push((Token::Punct(c), line));
                at += 1;
            }
            '"' => {
                let start = line;
                let mut value = String::new();
                at += 1;
                loop {
                    match chars.get(at) {
                        None => return Err(format!("line {start}: unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => {
                            at += 1;
                            match chars.get(at) {
                                Some('n') => value.push('\n'),
                                Some('t') => value.push('\t'),
                                Some('r') => value.push('\r'),
                                Some(&other) => value.push(other),
                                None => return Err(format!("line {start}: unterminated quoted string")),
                            }
                        }
                        Some('\n') => {
                            line += 1;
                            value.push('\n');
                        }
                        Some(&other) => value.push(other),
                    }
                    at += 1;
                }
                at += 1;
                tokens.push((Token::Quoted(value), start));
            }
            _ => {
                let mut value = String::new();
                while at < chars.len() {
                    let c = chars[at];
                    if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '=' | '"') {
                        break;
                    }
                    value.push(c);
                    at += 1;
                }
                tokens.push((Token::Word(value), line));
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_zookeeper_server_and_client_sections() {
        let text = r#"
            /* ZooKeeper's SASL example */
            Server {
                org.apache.zookeeper.server.auth.DigestLoginModule required
                user_super="adminsecret"
                user_bob="bob\"secret"; // bob
            };
            # the client
            Client {
                org.apache.zookeeper.server.auth.DigestLoginModule Required
                username=bob
                password="bob secret";
            };
        "#;
        let config = JaasConfig::parse(text).unwrap();
        let server = config.section("Server").unwrap();
        assert_eq!(server.entries.len(), 1);
        assert_eq!(server.entries[0].module, "org.apache.zookeeper.server.auth.DigestLoginModule");
        assert_eq!(
            server.entries[0].options,
            vec![("user_super".into(), "adminsecret".into()), ("user_bob".into(), "bob\"secret".into())]
        );
        let client = &config.section("Client").unwrap().entries[0];
        assert_eq!(client.flag, "required");
        assert_eq!(client.option("username"), Some("bob"));
        assert_eq!(client.option("password"), Some("bob secret"));
        assert!(config.section("server").is_none());
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("Server {\n m required a=\"b\" \n", "end of file"),
            ("Server {\n m mandatory;\n};", "line 2: invalid control flag"),
            ("Server {\n m required a;\n};", "line 2: expected '='"),
            ("Server {\n m required a=\"${x}\";\n};", "expansion"),
            ("Server { m required; };\nServer { m required; };", "line 2: section Server appears twice"),
            ("Server {\n m required a=\"b;\n};", "line 2: unterminated quoted string"),
        ];
        for (text, cause) in cases {
            let error = JaasConfig::parse(text).unwrap_err();
            assert!(error.contains(cause), "{text:?}: {error}");
        }
    }
}
