//! Authentication settings beyond TLS: the auth providers (`authProvider.N`), SASL's JAAS
//! `Server` section and its rules (super users, principal canonicalization, failed logins),
//! and `enforce.auth.*`. Parsed from zoo.cfg keys (each also as `zookeeper.<key>`, as
//! ZooKeeper's system properties) by [`AuthConfig::parse`]; the JAAS file is read by
//! [`AuthConfig::load_files`] at startup. The SASL exchange itself is `server::sasl`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferrokeeper_proto::sasl::jaas::JaasConfig;

use crate::config::ConfigError;
use crate::tree::acl::{self, Providers};

/// ZooKeeper's provider classes, as `authProvider.N` names them.
pub const SASL_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
const BUILT_IN_CLASSES: &[&str] = &[
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
    SASL_PROVIDER_CLASS,
];
/// The login module whose options hold DIGEST-MD5 passwords.
const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";

/// Keys this module reads (without the `zookeeper.` prefix); `authProvider.*` and
/// `superUser.*` are matched by prefix.
const KEYS: &[&str] = &[
    "java.security.auth.login.config",
    "sasl.serverconfig",
    "superUser",
    "SASLAuthenticationProvider.superPassword",
    "kerberos.removeHostFromPrincipal",
    "kerberos.removeRealmFromPrincipal",
    "allowSaslFailedClients",
    "letAnySaslUserDoX",
    "enforce.auth.enabled",
    "enforce.auth.schemes",
    "sessionRequireClientSASLAuth",
    "requireClientAuthScheme",
    "security.auth_to_local",
    "java.security.krb5.realm",
];

/// Whether `key` (without `zookeeper.`) is one of the keys read here.
pub fn is_auth_key(key: &str) -> bool {
    KEYS.contains(&key)
        || key.starts_with("authProvider.")
        || key.strip_prefix("superUser.").is_some_and(|suffix| !suffix.is_empty())
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Providers registered beyond the built-in ones (the tree's ACL rules use them).
    pub providers: Providers,
    /// `java.security.auth.login.config`: the JAAS file.
    pub jaas_path: Option<PathBuf>,
    /// `zookeeper.sasl.serverconfig`: its section for the client port (default `Server`).
    pub server_section: String,
    /// The section's DIGEST-MD5 users and passwords, once loaded; `None`: no SASL login is
    /// configured, and a SASL token is answered with an empty OK, as ZooKeeper answers it.
    pub sasl_users: Option<BTreeMap<String, String>>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of user `super`
    /// (which must still be listed in the section, as in ZooKeeper).
    pub super_password: Option<String>,
    /// `zookeeper.superUser` and `zookeeper.superUser.<suffix>`: SASL ids that are also `super`.
    pub super_users: Vec<String>,
    /// `kerberos.removeHostFromPrincipal` / `removeRealmFromPrincipal` (default false).
    pub remove_host: bool,
    pub remove_realm: bool,
    /// The Kerberos default realm (`java.security.krb5.realm`, else krb5.conf's
    /// `default_realm`; empty when there is none), for principal canonicalization.
    pub default_realm: String,
    /// `zookeeper.allowSaslFailedClients`: a failed SASL login keeps its connection.
    pub allow_failed_clients: bool,
    /// `enforce.auth.enabled` with `enforce.auth.schemes` (or `sessionRequireClientSASLAuth`):
    /// a connection must hold an id of one of these schemes before any other request.
    /// Empty: not enforced.
    pub enforce_schemes: Vec<String>,
    /// `requireClientAuthScheme`: accepted and, as in ZooKeeper 3.5-3.9 (which never read
    /// it), not acted on; `main` warns at startup and names `sessionRequireClientSASLAuth`.
    pub require_client_auth_scheme: Option<String>,
}

impl AuthConfig {
    /// Reads the keys; `x509_available`: a secure client port registers the x509 provider.
    pub fn parse<'a>(
        value_of: &impl Fn(&str) -> Option<&'a str>,
        pairs: &[(String, String)],
        x509_available: bool,
    ) -> Result<AuthConfig, ConfigError> {
        let mut providers = Providers::default();
        for (key, class) in pairs {
            let bare = key.strip_prefix("zookeeper.").unwrap_or(key);
            if !bare.starts_with("authProvider.") {
                continue;
            }
            let class = class.trim();
            if class == SASL_PROVIDER_CLASS {
                providers.sasl = true;
            } else if !BUILT_IN_CLASSES.contains(&class) {
                return Err(invalid(
                    key,
                    class,
                    "ferrokeeper cannot load Java auth providers; the built-in ones are \
                     DigestAuthenticationProvider, IPAuthenticationProvider, X509AuthenticationProvider \
                     and SASLAuthenticationProvider",
                ));
            }
        }
        providers.let_any_sasl_user_do_x = value_of("letAnySaslUserDoX").map(str::to_owned);
        let flag = |key: &str| value_of(key).is_some_and(|v| v.trim() == "true");
        let mut super_users: Vec<String> = pairs
            .iter()
            .filter(|(key, _)| {
                let bare = key.strip_prefix("zookeeper.").unwrap_or(key);
                bare == "superUser" || bare.strip_prefix("superUser.").is_some_and(|s| !s.is_empty())
            })
            .map(|(_, value)| value.clone())
            .collect();
        super_users.dedup();
        if let Some(rules) = value_of("security.auth_to_local")
            && rules.trim() != "DEFAULT"
        {
            return Err(invalid(
                "zookeeper.security.auth_to_local",
                rules,
                "only the DEFAULT rule is supported",
            ));
        }
        let enforce_schemes = enforce_schemes(value_of, &providers, x509_available)?;
        Ok(AuthConfig {
            jaas_path: value_of("java.security.auth.login.config")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            server_section: value_of("sasl.serverconfig").unwrap_or("Server").to_owned(),
            sasl_users: None,
            super_password: value_of("SASLAuthenticationProvider.superPassword").map(str::to_owned),
            super_users,
            remove_host: flag("kerberos.removeHostFromPrincipal"),
            remove_realm: flag("kerberos.removeRealmFromPrincipal"),
            default_realm: value_of("java.security.krb5.realm").unwrap_or_default().to_owned(),
            allow_failed_clients: flag("allowSaslFailedClients"),
            enforce_schemes,
            require_client_auth_scheme: value_of("requireClientAuthScheme").map(str::to_owned),
            providers,
        })
    }

    /// Reads the JAAS file's server section (and krb5.conf's default realm unless
    /// `java.security.krb5.realm` gave it). Errors name the file and the cause.
    pub fn load_files(&mut self) -> Result<(), ConfigError> {
        if self.default_realm.is_empty() {
            self.default_realm = krb5_default_realm().unwrap_or_default();
        }
        let Some(path) = &self.jaas_path else { return Ok(()) };
        let key = "java.security.auth.login.config";
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(key, &path.display().to_string(), &format!("cannot read the JAAS file: {e}"))
        })?;
        self.sasl_users = Some(server_users(&text, path, &self.server_section)?);
        Ok(())
    }

    /// The password of a DIGEST-MD5 user (SaslServerCallbackHandler: only users listed in
    /// the section; `super`'s may come from `superPassword`).
    pub fn password(&self, user: &str) -> Option<String> {
        let users = self.sasl_users.as_ref()?;
        let listed = users.get(user)?;
        if user == "super"
            && let Some(password) = &self.super_password
        {
            return Some(password.clone());
        }
        Some(listed.clone())
    }

    /// The `sasl` id a login gets, as SaslServerCallbackHandler.handleAuthorizeCallback
    /// canonicalizes it: the authentication id's short name (its Kerberos `DEFAULT` rule:
    /// simple names as they are, `name[/host]@REALM` to `name` when REALM is the default
    /// realm), then `/host` and `@REALM` appended back unless removeHost/removeRealm say
    /// otherwise. When no rule applies the client's authorization id is kept. A name with `@`
    /// that is not a Kerberos name is refused (ZooKeeper throws there).
    pub fn sasl_id(&self, authentication_id: &str, authorization_id: &str) -> Result<String, String> {
        let Some((service, host, realm)) = acl::kerberos_name(authentication_id) else {
            return Err(format!("Malformed Kerberos name: {authentication_id}"));
        };
        let short = match realm {
            None => service,
            Some(realm) if realm == self.default_realm => service,
            Some(_) => return Ok(authorization_id.to_owned()),
        };
        let mut id = short.to_owned();
        if let Some(host) = host.filter(|_| !self.remove_host) {
            id.push('/');
            id.push_str(host);
        }
        if let Some(realm) = realm.filter(|_| !self.remove_realm) {
            id.push('@');
            id.push_str(realm);
        }
        Ok(id)
    }

    /// ZooKeeperServer.isSaslSuperUser.
    pub fn is_super_user(&self, sasl_id: &str) -> bool {
        !sasl_id.is_empty() && self.super_users.iter().any(|user| user == sasl_id)
    }

    /// `enforce.auth.schemes` contains `sasl`: a failed SASL login closes the connection with
    /// SessionClosedRequireSaslAuth even when allowSaslFailedClients is set.
    pub fn sasl_required(&self) -> bool {
        self.enforce_schemes.iter().any(|s| s == "sasl")
    }
}

/// AuthenticationHelper's rules: `sessionRequireClientSASLAuth=true` means sasl; else
/// `enforce.auth.enabled=true` needs `enforce.auth.schemes`, each with a provider.
fn enforce_schemes<'a>(
    value_of: &impl Fn(&str) -> Option<&'a str>,
    providers: &Providers,
    x509_available: bool,
) -> Result<Vec<String>, ConfigError> {
    let is_true = |key: &str| value_of(key).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let schemes: Vec<String> = if is_true("sessionRequireClientSASLAuth") {
        vec!["sasl".to_owned()]
    } else if is_true("enforce.auth.enabled") {
        let listed: Vec<String> = value_of("enforce.auth.schemes")
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if listed.is_empty() {
            return Err(invalid(
                "enforce.auth.enabled",
                "true",
                "enforce.auth.schemes must be configured (a comma list of schemes)",
            ));
        }
        listed
    } else {
        return Ok(Vec::new());
    };
    for scheme in &schemes {
        let available = match scheme.as_str() {
            "ip" | "digest" => true,
            "x509" => x509_available,
            "sasl" => providers.sasl,
            _ => false,
        };
        if !available {
            return Err(invalid(
                "enforce.auth.schemes",
                scheme,
                &format!(
                    "Authentication scheme {scheme} is not available (sasl needs \
                     authProvider.N={SASL_PROVIDER_CLASS}, x509 a secureClientPort)"
                ),
            ));
        }
    }
    Ok(schemes)
}

/// The `user_<name>="password"` options of `section` (ZooKeeper's SaslServerCallbackHandler).
/// A missing section, or one whose login module is Kerberos, is an error naming the file.
fn server_users(text: &str, path: &Path, section: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let key = "java.security.auth.login.config";
    let shown = path.display().to_string();
    let jaas = JaasConfig::parse(text).map_err(|e| invalid(key, &shown, &format!("bad JAAS file: {e}")))?;
    let Some(entries) = jaas.section(section) else {
        return Err(invalid(
            key,
            &shown,
            &format!("No JAAS configuration section named '{section}' was found in '{shown}'."),
        ));
    };
    let mut users = BTreeMap::new();
    for entry in &entries.entries {
        if entry.module.contains("Krb5LoginModule") {
            return Err(invalid(
                key,
                &shown,
                &format!(
                    "section {section} uses {}: Kerberos (GSSAPI) is not supported yet; \
                     DIGEST-MD5 with {DIGEST_LOGIN_MODULE} is",
                    entry.module
                ),
            ));
        }
        for (option, value) in &entry.options {
            if let Some(user) = option.strip_prefix("user_") {
                users.insert(user.to_owned(), value.clone());
            }
        }
    }
    Ok(users)
}

/// `default_realm` of krb5.conf's `[libdefaults]` (`KRB5_CONFIG`, else /etc/krb5.conf).
fn krb5_default_realm() -> Option<String> {
    let path = std::env::var_os("KRB5_CONFIG").map(PathBuf::from).unwrap_or_else(|| "/etc/krb5.conf".into());
    let text = std::fs::read_to_string(path).ok()?;
    let mut in_libdefaults = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_libdefaults = line == "[libdefaults]";
        } else if in_libdefaults
            && let Some((name, value)) = line.split_once('=')
            && name.trim() == "default_realm"
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), reason: reason.to_owned() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<AuthConfig, ConfigError> {
        let pairs: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let value_of = |key: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == key || k == &format!("zookeeper.{key}"))
                .map(|(_, v)| v.as_str())
        };
        AuthConfig::parse(&value_of, &pairs, false)
    }

    #[test]
    fn providers_and_enforcement() {
        let config = parse(&[("authProvider.1", SASL_PROVIDER_CLASS)]).unwrap();
        assert!(config.providers.sasl);
        assert!(config.enforce_schemes.is_empty());
        assert!(!parse(&[]).unwrap().providers.sasl);
        let config = parse(&[
            ("zookeeper.authProvider.sasl", SASL_PROVIDER_CLASS),
            ("sessionRequireClientSASLAuth", "true"),
        ])
        .unwrap();
        assert_eq!(config.enforce_schemes, vec!["sasl"]);
        assert!(config.sasl_required());
        let error = parse(&[("enforce.auth.enabled", "true"), ("enforce.auth.schemes", "sasl")]).unwrap_err();
        assert!(error.to_string().contains("Authentication scheme sasl is not available"), "{error}");
        let error = parse(&[("enforce.auth.enabled", "true")]).unwrap_err();
        assert!(error.to_string().contains("enforce.auth.schemes must be configured"), "{error}");
        let config =
            parse(&[("enforce.auth.enabled", "true"), ("enforce.auth.schemes", "digest, ip")]).unwrap();
        assert_eq!(config.enforce_schemes, vec!["digest", "ip"]);
        let error = parse(&[("authProvider.2", "com.example.MyProvider")]).unwrap_err();
        assert!(error.to_string().contains("cannot load Java auth providers"), "{error}");
        let config = parse(&[("superUser", "admin"), ("zookeeper.superUser.2", "root")]).unwrap();
        assert!(
            config.is_super_user("admin") && config.is_super_user("root") && !config.is_super_user("bob")
        );
    }

    #[test]
    fn principals_are_canonicalized_as_zookeeper_does() {
        let mut config = AuthConfig { default_realm: "EXAMPLE.COM".into(), ..AuthConfig::default() };
        assert_eq!(config.sasl_id("bob", "bob").unwrap(), "bob");
        assert_eq!(config.sasl_id("bob@EXAMPLE.COM", "bob@EXAMPLE.COM").unwrap(), "bob@EXAMPLE.COM");
        assert_eq!(config.sasl_id("zk/host1@EXAMPLE.COM", "x").unwrap(), "zk/host1@EXAMPLE.COM");
        // Another realm: no rule applies, the authorization id stays.
        assert_eq!(config.sasl_id("bob@OTHER.ORG", "bob@OTHER.ORG").unwrap(), "bob@OTHER.ORG");
        config.remove_realm = true;
        config.remove_host = true;
        assert_eq!(config.sasl_id("bob@EXAMPLE.COM", "bob@EXAMPLE.COM").unwrap(), "bob");
        assert_eq!(config.sasl_id("zk/host1@EXAMPLE.COM", "x").unwrap(), "zk");
        assert_eq!(config.sasl_id("bob@OTHER.ORG", "bob@OTHER.ORG").unwrap(), "bob@OTHER.ORG");
        assert!(config.sasl_id("a@b@c", "a@b@c").is_err());
    }

    #[test]
    fn server_section_users() {
        let text = "Server { org.apache.zookeeper.server.auth.DigestLoginModule required \
                    user_super=\"adminpw\" user_bob=\"bobpw\" debug=true; };";
        let users = server_users(text, Path::new("/j.conf"), "Server").unwrap();
        assert_eq!(users.get("bob").map(String::as_str), Some("bobpw"));
        assert_eq!(users.len(), 2);
        let error = server_users(text, Path::new("/j.conf"), "ZkServer").unwrap_err().to_string();
        assert!(
            error.contains("No JAAS configuration section named 'ZkServer' was found in '/j.conf'."),
            "{error}"
        );
        let krb = "Server { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true; };";
        let error = server_users(krb, Path::new("/j.conf"), "Server").unwrap_err().to_string();
        assert!(error.contains("Kerberos (GSSAPI) is not supported yet"), "{error}");
        let config = AuthConfig {
            sasl_users: Some(users),
            super_password: Some("fromproperty".into()),
            ..AuthConfig::default()
        };
        assert_eq!(config.password("super").as_deref(), Some("fromproperty"));
        assert_eq!(config.password("bob").as_deref(), Some("bobpw"));
        assert_eq!(config.password("eve"), None);
    }
}
