//! How passkeys are named in the store and tied to accounts.

use uuid::Uuid;

use crate::crypto::b64url;

/// The credential id as stored (base64url).
pub fn credential_key(id: &[u8]) -> String {
    b64url(id)
}

/// The user handle a passkey carries: the account id, which is a UUID.
pub fn user_handle(user_id: &str) -> Option<Uuid> {
    Uuid::parse_str(user_id).ok()
}
