//! ACL schemes and permission checks: world, auth, digest, ip (with CIDR), super.

use ferrokeeper_proto::{Code, Id};

/// `user:BASE64(SHA1("user:password"))` for `user:password`, as DigestAuthenticationProvider.
pub fn digest(user_password: &str) -> String {
    let _ = user_password;
    todo!()
}

/// Handles an `auth` packet: the ids the connection gains, or AuthFailed.
/// `digest` → `digest:<digest(auth)>` (plus `super:` if it equals `super_digest`, given as
/// `super:<base64>`); `ip` → `ip:<client_ip>`; any other scheme → AuthFailed.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    client_ip: &str,
    super_digest: Option<&str>,
) -> Result<Vec<Id>, Code> {
    let _ = (scheme, auth, client_ip, super_digest);
    todo!()
}
