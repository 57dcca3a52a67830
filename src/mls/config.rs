//! The group settings every room uses, in one place so creator and joiners cannot disagree.

use openmls::prelude::{
    MlsGroupCreateConfig, MlsGroupJoinConfig, PURE_CIPHERTEXT_WIRE_FORMAT_POLICY,
    SenderRatchetConfiguration, SignatureScheme,
};

use super::RoomSuite;

/// Every suite a room may use signs with Ed25519 (`super::suite`), so one device key serves
/// all of a client's rooms, whatever their suite.
pub(crate) const SIGNATURE_SCHEME: SignatureScheme = SignatureScheme::ED25519;

/// How many past epochs keep their message keys, so that a message sent just before a commit
/// still decrypts after it. Kept low: every retained epoch weakens forward secrecy.
pub(crate) const MAX_PAST_EPOCHS: usize = 2;

/// openmls pads the encrypted content of every private message (commits included) to this
/// block size. Application payloads are additionally padded by [`super::padding`], because
/// openmls pads the whole content (signature included), which alone does not make payloads
/// of 1 and 60 bytes look alike.
const PADDING_SIZE: usize = 64;

/// How many of one sender's messages may arrive before an earlier one of theirs. A member's
/// signed vote travels back to the others only with the room's confirmation, after any chat
/// the voter sent meanwhile, so the window is wider than openmls's default of 5; its cost is
/// that many skipped message keys kept per sender, a little forward secrecy.
const OUT_OF_ORDER_TOLERANCE: u32 = 64;

/// How far ahead of the last one a sender's message may be (openmls's default).
const MAXIMUM_FORWARD_DISTANCE: u32 = 1000;

fn sender_ratchet() -> SenderRatchetConfiguration {
    SenderRatchetConfiguration::new(OUT_OF_ORDER_TOLERANCE, MAXIMUM_FORWARD_DISTANCE)
}

/// Settings for creating a room of `suite`.
///
/// - Handshake messages are encrypted too (`PURE_CIPHERTEXT`): the relay sees no membership.
/// - The ratchet tree travels inside the Welcome, because there is no directory service to
///   fetch it from (joining would otherwise fail with a missing ratchet tree).
pub(crate) fn create_config(suite: RoomSuite) -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(suite.ciphersuite())
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .padding_size(PADDING_SIZE)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(sender_ratchet())
        .use_ratchet_tree_extension(true)
        .build()
}

/// Settings for joining a room from a Welcome; the same policies as [`create_config`].
pub(crate) fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .padding_size(PADDING_SIZE)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .sender_ratchet_configuration(sender_ratchet())
        .use_ratchet_tree_extension(true)
        .build()
}
