//! Bearer tokens: JWTs (HS256) signed with the server's secret, naming a principal, the
//! databases it may open, whether it may write, and its role.

use crate::secret::Secret;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `dbs` entry that grants every database.
pub const ALL_DATABASES: &str = "*";

/// The principal name a token gets when none is given.
pub const DEFAULT_SUBJECT: &str = "weft";

/// The principal name of the tokens a server mints to dial its peers.
pub const PEER_SUBJECT: &str = "peer";

/// How long a token a server mints to dial a peer is valid. A token is checked only when a
/// connection opens, so it need not outlive the dial; a fresh one is minted for each.
pub const PEER_TOKEN_TTL: Duration = Duration::from_secs(300);

/// The words of a refusal for a token signed with another secret (see
/// [`TokenError::BadSignature`]), which a peer recognises in the answer.
pub const BAD_SIGNATURE: &str = "bad signature";

/// What a token's holder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// An app's replica, syncing at `/v1/sync/{database}`.
    Client,
    /// Another server of the same organisation (same secret): syncs every database in the
    /// peer role, and may list databases (`/v1/databases`) and read peer status
    /// (`/v1/peers`).
    Peer,
}

impl TokenRole {
    /// The role as it appears in a token's `role` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Client => "client",
            TokenRole::Peer => "peer",
        }
    }

    /// The role named `text`, if this build knows it.
    pub fn parse(text: &str) -> Option<TokenRole> {
        match text {
            "client" => Some(TokenRole::Client),
            "peer" => Some(TokenRole::Peer),
            _ => None,
        }
    }
}

/// A token's claims, as signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The principal's name.
    pub sub: String,
    /// The databases it may open; [`ALL_DATABASES`] grants all. Missing: none.
    #[serde(default)]
    pub dbs: Vec<String>,
    /// Whether it may write. Missing: read-only.
    #[serde(default)]
    pub write: bool,
    /// Its role, as text so that a role this build does not know is refused by name.
    /// Missing: `client`.
    #[serde(default = "client_role")]
    pub role: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, in seconds since the Unix epoch.
    #[serde(default)]
    pub iat: u64,
}

fn client_role() -> String {
    TokenRole::Client.as_str().to_owned()
}

/// What a new token grants, before it is stamped with times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The principal's name.
    pub sub: String,
    /// The databases (or [`ALL_DATABASES`]).
    pub dbs: Vec<String>,
    /// Whether it may write.
    pub write: bool,
    /// Its role.
    pub role: TokenRole,
    /// How long the token is valid.
    pub ttl: Duration,
}

impl Grant {
    /// What a peer token grants: every database, read and write, role [`TokenRole::Peer`].
    pub fn peer(sub: impl Into<String>, ttl: Duration) -> Grant {
        Grant {
            sub: sub.into(),
            dbs: vec![ALL_DATABASES.into()],
            write: true,
            role: TokenRole::Peer,
            ttl,
        }
    }

    /// The claims of a token granting this, issued at `now`.
    pub fn claims_at(&self, now: SystemTime) -> Result<Claims, TokenError> {
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| TokenError::Mint("the clock is before 1970".into()))?
            .as_secs();
        if self.ttl.is_zero() {
            return Err(TokenError::Mint("the time to live must be positive".into()));
        }
        let too_long = || TokenError::Mint("the time to live is too long".into());
        let ttl = self
            .ttl
            .as_secs()
            .checked_add(u64::from(self.ttl.subsec_nanos() > 0))
            .ok_or_else(too_long)?;
        let exp = iat.checked_add(ttl).ok_or_else(too_long)?;
        Ok(Claims {
            sub: self.sub.clone(),
            dbs: self.dbs.clone(),
            write: self.write,
            role: self.role.as_str().to_owned(),
            exp,
            iat,
        })
    }
}

/// Why a token is refused (or could not be made). Each message fits on one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or its claims are not Weft's.
    #[error("invalid token: {0}")]
    Malformed(String),
    /// Not signed with this server's secret.
    #[error("invalid token: bad signature (not signed with this server's secret)")]
    BadSignature,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// A JWT, but not an acceptable one (algorithm, missing claim).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// A token could not be made.
    #[error("cannot make a token: {0}")]
    Mint(String),
}

/// Signs `claims` with `secret`.
pub fn encode(secret: &Secret, claims: &Claims) -> Result<String, TokenError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| TokenError::Mint(e.to_string()))
}

/// A token granting `grant`, valid from now.
pub fn mint(secret: &Secret, grant: &Grant) -> Result<String, TokenError> {
    encode(secret, &grant.claims_at(SystemTime::now())?)
}

/// Checks `token`'s signature (HS256 with `secret`, no other algorithm) and expiry (no
/// leeway), and returns its claims.
pub fn verify(secret: &Secret, token: &str) -> Result<Claims, TokenError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map(|data| data.claims)
    .map_err(|e| match e.into_kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            TokenError::Malformed("not a JWT".into())
        }
        ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
            TokenError::Malformed("its claims are not a Weft token's".into())
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::Invalid("the algorithm must be HS256".into())
        }
        ErrorKind::MissingRequiredClaim(claim) => {
            TokenError::Invalid(format!("missing claim {claim:?}"))
        }
        ErrorKind::ImmatureSignature => TokenError::Invalid("not valid yet (nbf)".into()),
        other => TokenError::Invalid(format!("{other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        Secret::new(text).unwrap()
    }

    fn grant(write: bool) -> Grant {
        Grant {
            sub: "alice".into(),
            dbs: vec!["notes".into()],
            write,
            role: TokenRole::Client,
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_minted_token_verifies() {
        let key = secret("0123456789abcdef0123");
        let token = mint(&key, &grant(true)).unwrap();
        let claims = verify(&key, &token).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.dbs, ["notes"]);
        assert!(claims.write);
        assert_eq!(claims.role, "client");
        assert_eq!(claims.exp, claims.iat + 60);
    }

    #[test]
    fn wrong_secret_expired_and_garbage_are_refused() {
        let key = secret("0123456789abcdef0123");
        let token = mint(&key, &grant(false)).unwrap();
        assert_eq!(
            verify(&secret("another secret, long enough"), &token),
            Err(TokenError::BadSignature)
        );
        // A peer recognises the refusal by these words (peers::refused_for_our_secret).
        assert!(TokenError::BadSignature.to_string().contains(BAD_SIGNATURE));
        let mut claims = grant(false).claims_at(SystemTime::now()).unwrap();
        claims.exp = claims.iat - 1;
        let expired = encode(&key, &claims).unwrap();
        assert_eq!(verify(&key, &expired), Err(TokenError::Expired));
        assert!(matches!(
            verify(&key, "not.a.token"),
            Err(TokenError::Malformed(_))
        ));
        assert!(matches!(verify(&key, ""), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn other_algorithms_are_refused() {
        let key = secret("0123456789abcdef0123");
        let claims = grant(true).claims_at(SystemTime::now()).unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap();
        assert!(matches!(verify(&key, &token), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn ttl_must_be_positive_and_finite() {
        let mut g = grant(true);
        g.ttl = Duration::ZERO;
        assert!(matches!(
            g.claims_at(SystemTime::now()),
            Err(TokenError::Mint(_))
        ));
        g.ttl = Duration::MAX;
        assert!(matches!(
            g.claims_at(SystemTime::now()),
            Err(TokenError::Mint(_))
        ));
    }

    #[test]
    fn unknown_roles_are_kept_as_text() {
        assert_eq!(TokenRole::parse("client"), Some(TokenRole::Client));
        assert_eq!(TokenRole::parse("peer"), Some(TokenRole::Peer));
        assert_eq!(TokenRole::parse("admin"), None);
    }
}
