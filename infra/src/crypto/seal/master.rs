//! The master keys: the current one wraps every new data key; the previous one, during a
//! rotation, still unwraps the data keys not rewrapped yet.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use twofold_domain::TenantId;
use zeroize::Zeroizing;

use super::{unwrap_data_key, SealError};
use crate::config::Key32;

/// The id stored next to a wrapped data key: 16 hex characters of a keyed hash of the master
/// key under a fixed label. It names a key without revealing anything that helps find it.
pub fn master_key_id(master: &Key32) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master.expose())
        .expect("HMAC accepts any key length");
    mac.update(b"twofold/master-key-id/v1");
    hex::encode(&mac.finalize().into_bytes()[..8])
}

/// `TWOFOLD_MASTER_KEY` and, while a rotation is under way, `TWOFOLD_MASTER_KEY_PREVIOUS`.
#[derive(Clone)]
pub struct MasterKeys {
    current: Key32,
    current_id: String,
    previous: Option<(Key32, String)>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("current_id", &self.current_id)
            .field("previous_id", &self.previous.as_ref().map(|(_, id)| id))
            .finish()
    }
}

impl MasterKeys {
    pub fn new(current: Key32, previous: Option<Key32>) -> Self {
        let current_id = master_key_id(&current);
        let previous = previous
            .map(|k| {
                let id = master_key_id(&k);
                (k, id)
            })
            .filter(|(_, id)| *id != current_id);
        Self {
            current,
            current_id,
            previous,
        }
    }

    /// The key new data keys are wrapped under.
    pub fn current(&self) -> &Key32 {
        &self.current
    }

    /// Whether a previous key (other than the current one) is configured.
    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }

    /// Its id, stored with each data key it wraps.
    pub fn current_id(&self) -> &str {
        &self.current_id
    }

    /// Unwraps a stored tenant data key (the first format, `tenant_data_keys`) with the master
    /// key its id names. A row without an id (wrapped before ids were recorded) is tried under
    /// the current key, then the previous one. Returns the key and whether it was under the
    /// current master key.
    pub fn unwrap(
        &self,
        tenant: &TenantId,
        wrapped: &[u8],
        id: Option<&str>,
    ) -> Result<(Zeroizing<[u8; 32]>, bool), SealError> {
        self.unwrap_by(tenant.as_str(), id, |master| {
            unwrap_data_key(master, tenant, wrapped)
        })
    }

    /// Unwraps with `open` under the master key `id` names (`owner` only names the key in an
    /// error); see [`MasterKeys::unwrap`].
    pub(super) fn unwrap_by(
        &self,
        owner: &str,
        id: Option<&str>,
        open: impl Fn(&Key32) -> Result<Zeroizing<[u8; 32]>, SealError>,
    ) -> Result<(Zeroizing<[u8; 32]>, bool), SealError> {
        let previous = self.previous.as_ref();
        match id {
            Some(id) if id == self.current_id => open(&self.current).map(|k| (k, true)),
            Some(id) => match previous.filter(|(_, p)| p == id) {
                Some((key, _)) => open(key).map(|k| (k, false)),
                None => Err(SealError::UnknownMasterKey {
                    tenant: owner.to_owned(),
                    id: id.to_owned(),
                }),
            },
            None => match open(&self.current) {
                Ok(key) => Ok((key, true)),
                Err(e) => match previous {
                    Some((key, _)) => open(key).map(|k| (k, false)),
                    None => Err(e),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wrap_data_key;
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn a_data_key_opens_under_the_master_key_its_id_names_or_not_at_all() {
        let old = Key32::from_bytes([1; 32]);
        let new = Key32::from_bytes([2; 32]);
        let other = Key32::from_bytes([3; 32]);
        let data = Zeroizing::new([9u8; 32]);
        let under_old = wrap_data_key(&old, &tenant(), &data).unwrap();
        let old_id = master_key_id(&old);
        assert_eq!(old_id.len(), 16);
        assert_ne!(old_id, master_key_id(&new));

        let rotating = MasterKeys::new(new.clone(), Some(old.clone()));
        let (key, current) = rotating
            .unwrap(&tenant(), &under_old, Some(&old_id))
            .unwrap();
        assert_eq!((*key, current), (*data, false));
        // A row from before ids were recorded: tried under both.
        let (key, current) = rotating.unwrap(&tenant(), &under_old, None).unwrap();
        assert_eq!((*key, current), (*data, false));

        // Without the previous key, nothing wrapped under it opens, and the error says which
        // key was missing without showing any key.
        let rotated = MasterKeys::new(new.clone(), None);
        let err = rotated
            .unwrap(&tenant(), &under_old, Some(&old_id))
            .unwrap_err();
        assert!(err.to_string().contains(&old_id), "{err}");
        assert!(rotated.unwrap(&tenant(), &under_old, None).is_err());
        // An id that is right but a key that is wrong still fails.
        let liar = MasterKeys::new(other, Some(new));
        assert!(liar.unwrap(&tenant(), &under_old, Some(&old_id)).is_err());
        assert!(!format!("{rotating:?}").contains("0101"), "{rotating:?}");
    }
}
