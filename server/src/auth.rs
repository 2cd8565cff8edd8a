//! Who is connecting and what they may do: the principal a token names, the refusals before a
//! connection opens, and the per-change [`ChangeAuthorizer`] an embedding app can replace.

use crate::config::AuthMode;
use crate::names::DatabaseName;
use crate::token::{self, Claims, TokenError, TokenRole, ALL_DATABASES};
use std::sync::Arc;
use weft_core::Change;

/// The holder of a verified token (or, with auth off, anyone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its name (the token's `sub`).
    pub name: String,
    /// Its role.
    pub role: TokenRole,
    /// Whether it may write.
    pub write: bool,
    /// The databases it may open; [`ALL_DATABASES`] grants all.
    pub databases: Vec<String>,
}

impl Principal {
    /// The principal of a server running without auth: may read and write every database.
    pub fn anonymous() -> Principal {
        Principal {
            name: "anonymous".into(),
            role: TokenRole::Client,
            write: true,
            databases: vec![ALL_DATABASES.into()],
        }
    }

    /// The principal a token's verified claims name; refused if its role is unknown.
    pub fn from_claims(claims: Claims) -> Result<Principal, AuthError> {
        let role = TokenRole::parse(&claims.role).ok_or(AuthError::UnknownRole(claims.role))?;
        Ok(Principal {
            name: claims.sub,
            role,
            write: claims.write,
            databases: claims.dbs,
        })
    }

    /// Whether it may open `database`.
    pub fn may_open(&self, database: &DatabaseName) -> bool {
        self.databases
            .iter()
            .any(|d| d == ALL_DATABASES || d == database.as_str())
    }
}

/// Why a request is refused before its WebSocket opens: each is an HTTP 401 or 403 with
/// the message as its one-line body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token in the `Authorization` header nor the `token` query parameter.
    #[error("missing token: send 'Authorization: Bearer TOKEN' or '?token=TOKEN'")]
    Missing,
    /// An `Authorization` header that is not `Bearer TOKEN`.
    #[error("bad Authorization header: expected 'Bearer TOKEN'")]
    BadHeader,
    /// The token is not valid.
    #[error("{0}")]
    Token(#[from] TokenError),
    /// A role this server does not know.
    #[error("token role {0:?} is unknown to this server (known: \"client\", \"peer\")")]
    UnknownRole(String),
    /// A known role that may not use this endpoint.
    #[error("token role {role:?} may not use {endpoint} (only \"peer\")")]
    Role {
        /// The token's role.
        role: String,
        /// The endpoint asked for.
        endpoint: &'static str,
    },
    /// The token does not name the database.
    #[error("token does not grant database {0:?}")]
    Database(String),
}

impl AuthError {
    /// The HTTP status: 401 when the holder is unknown, 403 when known but not allowed.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::BadHeader | AuthError::Token(_) => 401,
            AuthError::UnknownRole(_) | AuthError::Role { .. } | AuthError::Database(_) => 403,
        }
    }
}

/// Decides who may sync `database`, given the bearer token sent (if any): a client, or a
/// peer server (whose token grants every database).
pub fn authenticate(
    mode: &AuthMode,
    token: Option<&str>,
    database: &DatabaseName,
) -> Result<Principal, AuthError> {
    let principal = verify(mode, token)?;
    if !principal.may_open(database) {
        return Err(AuthError::Database(database.as_str().into()));
    }
    Ok(principal)
}

/// Decides whether the holder of `token` may use `endpoint`, which only peer servers may
/// (listing databases, peer status). With auth off, everyone may.
pub fn authenticate_peer(
    mode: &AuthMode,
    token: Option<&str>,
    endpoint: &'static str,
) -> Result<Principal, AuthError> {
    let principal = verify(mode, token)?;
    if matches!(mode, AuthMode::Token(_)) && principal.role != TokenRole::Peer {
        return Err(AuthError::Role {
            role: principal.role.as_str().into(),
            endpoint,
        });
    }
    Ok(principal)
}

/// The principal `token` names (anyone, with auth off).
fn verify(mode: &AuthMode, token: Option<&str>) -> Result<Principal, AuthError> {
    let secret = match mode {
        AuthMode::Disabled => return Ok(Principal::anonymous()),
        AuthMode::Token(secret) => secret,
    };
    let token = token.ok_or(AuthError::Missing)?;
    Principal::from_claims(token::verify(secret, token)?)
}

/// Decides, per change a client sends, whether it may be applied. A refused change is not
/// applied; the client is told why (a `Reject` with the reason) and keeps it locally.
///
/// The server calls it on the connection's blocking worker, once per received change: keep
/// it cheap and never block on I/O for long. A read-only token's changes are refused before
/// the authorizer is asked: no authorizer can lift that limit.
///
/// ```no_run
/// use std::sync::Arc;
/// use weft_server::{AuthMode, ChangeAuthorizer, DatabaseName, Principal, Secret, ServerConfig};
///
/// struct NoAuditWrites;
///
/// impl ChangeAuthorizer for NoAuditWrites {
///     fn authorize(
///         &self,
///         _principal: &Principal,
///         _database: &DatabaseName,
///         change: &weft_core::Change,
///     ) -> Result<(), String> {
///         if &*change.table == "audit_log" {
///             return Err("audit_log is written by the server only".into());
///         }
///         Ok(())
///     }
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let (secret, _generated) = Secret::load_or_generate("weft-data/auth-secret".as_ref())?;
/// let config = ServerConfig::new("weft-data", AuthMode::Token(secret));
/// weft_server::serve(config, Arc::new(NoAuditWrites)).await?;
/// # Ok(()) }
/// ```
pub trait ChangeAuthorizer: Send + Sync {
    /// `Ok(())` to apply `change` from `principal` to `database`, `Err(reason)` to refuse.
    fn authorize(
        &self,
        principal: &Principal,
        database: &DatabaseName,
        change: &Change,
    ) -> Result<(), String>;
}

/// The reason a read-only token's changes are refused with.
pub const READ_ONLY_REASON: &str = "token is read-only";

/// The server's default: refuses every change from a read-only token, allows all from a
/// write token.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultChangeAuthorizer;

impl ChangeAuthorizer for DefaultChangeAuthorizer {
    fn authorize(
        &self,
        principal: &Principal,
        _database: &DatabaseName,
        _change: &Change,
    ) -> Result<(), String> {
        if principal.write {
            Ok(())
        } else {
            Err(READ_ONLY_REASON.into())
        }
    }
}

/// One connection's authorizer, as the sync session wants it: the app's authorizer with the
/// connection's principal and database bound.
pub(crate) struct ConnectionAuthorizer {
    inner: Arc<dyn ChangeAuthorizer>,
    principal: Principal,
    database: DatabaseName,
}

impl ConnectionAuthorizer {
    /// Binds `principal` and `database` to `inner`.
    pub(crate) fn new(
        inner: Arc<dyn ChangeAuthorizer>,
        principal: Principal,
        database: DatabaseName,
    ) -> ConnectionAuthorizer {
        ConnectionAuthorizer {
            inner,
            principal,
            database,
        }
    }
}

impl weft_core::sync::Authorizer for ConnectionAuthorizer {
    fn authorize(&self, change: &Change) -> Result<(), String> {
        if !self.principal.write {
            return Err(READ_ONLY_REASON.into());
        }
        self.inner
            .authorize(&self.principal, &self.database, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::token::Grant;
    use std::time::Duration;

    fn secret() -> Secret {
        Secret::new("0123456789abcdef0123").unwrap()
    }

    fn token(dbs: &[&str], write: bool) -> String {
        token::mint(
            &secret(),
            &Grant {
                sub: "bob".into(),
                dbs: dbs.iter().map(|d| d.to_string()).collect(),
                write,
                role: TokenRole::Client,
                ttl: Duration::from_secs(60),
            },
        )
        .unwrap()
    }

    fn db(name: &str) -> DatabaseName {
        DatabaseName::new(name).unwrap()
    }

    #[test]
    fn tokens_open_the_databases_they_name() {
        let mode = AuthMode::Token(secret());
        let principal = authenticate(&mode, Some(&token(&["a", "b"], true)), &db("b")).unwrap();
        assert_eq!(principal.name, "bob");
        assert!(principal.write);
        assert_eq!(
            authenticate(&mode, Some(&token(&["a"], true)), &db("c")),
            Err(AuthError::Database("c".into()))
        );
        assert!(authenticate(&mode, Some(&token(&["*"], false)), &db("zzz")).is_ok());
        assert_eq!(authenticate(&mode, None, &db("a")), Err(AuthError::Missing));
    }

    #[test]
    fn unknown_roles_are_forbidden() {
        let mut claims = Grant {
            sub: "s".into(),
            dbs: vec!["*".into()],
            write: true,
            role: TokenRole::Client,
            ttl: Duration::from_secs(60),
        }
        .claims_at(std::time::SystemTime::now())
        .unwrap();
        claims.role = "admin".into();
        let token = token::encode(&secret(), &claims).unwrap();
        let refused = authenticate(&AuthMode::Token(secret()), Some(&token), &db("a"));
        assert_eq!(refused, Err(AuthError::UnknownRole("admin".into())));
        assert_eq!(refused.unwrap_err().status(), 403);
    }

    #[test]
    fn peer_tokens_sync_every_database_and_only_they_use_peer_endpoints() {
        let mode = AuthMode::Token(secret());
        let peer = token::mint(&secret(), &Grant::peer("dc2", Duration::from_secs(60))).unwrap();
        let principal = authenticate(&mode, Some(&peer), &db("anything")).unwrap();
        assert_eq!(principal.role, TokenRole::Peer);
        assert!(principal.write);
        assert!(authenticate_peer(&mode, Some(&peer), "/v1/databases").is_ok());
        let client = token(&["*"], true);
        let refused = authenticate_peer(&mode, Some(&client), "/v1/databases");
        assert_eq!(
            refused,
            Err(AuthError::Role {
                role: "client".into(),
                endpoint: "/v1/databases"
            })
        );
        assert_eq!(refused.unwrap_err().status(), 403);
        let other = Secret::new("another secret, long enough").unwrap();
        let forged = token::mint(&other, &Grant::peer("x", Duration::from_secs(60))).unwrap();
        assert_eq!(
            authenticate_peer(&mode, Some(&forged), "/v1/databases")
                .unwrap_err()
                .status(),
            401
        );
        assert!(authenticate_peer(&AuthMode::Disabled, None, "/v1/peers").is_ok());
    }

    #[test]
    fn no_auth_lets_everyone_write() {
        let principal = authenticate(&AuthMode::Disabled, None, &db("a")).unwrap();
        assert!(principal.write && principal.may_open(&db("anything")));
    }
}
