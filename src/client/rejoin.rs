//! Going back into a room we were taken out of: only into the same group, with the same
//! people.
//!
//! A member that the relay took out of a room (it missed a vote, or was out-voted) joins
//! again through the ordinary password admission, and remembers what it knew of the group
//! it left: the group id and every other member's signature key. The Welcome that brings it
//! back must be for that group, and every member in it that it knew must still hold the key
//! it had. Otherwise it is a different group — a recreated room, or a relay's or impostor's
//! — and the client stays out and says so, rather than carry on a conversation with
//! strangers under familiar names.

use crate::mls::MemberInfo;

/// What a member remembers of a group it was taken out of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    pub group_id: Vec<u8>,
    /// The other members it had, with their keys.
    pub members: Vec<MemberInfo>,
}

/// Why a Welcome does not bring us back into the group we left.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejoinRefusal {
    #[error(
        "the welcome is for another group (the room was recreated, or someone is impersonating it)"
    )]
    OtherGroup,
    #[error("{nick} is in it with another key than before")]
    KeyChanged { nick: String },
    #[error("none of the members you were with are in it")]
    NobodyWeKnew,
}

/// Checks the group a Welcome brought us into against the one we left. Returns the members
/// that are new to us (joined while we were out), for a notice.
pub fn check(
    departed: &Departed,
    group_id: &[u8],
    members: &[MemberInfo],
) -> Result<Vec<String>, RejoinRefusal> {
    if departed.group_id != group_id {
        return Err(RejoinRefusal::OtherGroup);
    }
    let mut known = 0;
    let mut newcomers = Vec::new();
    for member in members.iter().filter(|member| !member.is_self) {
        match departed.members.iter().find(|before| before.nick == member.nick) {
            Some(before) if before.identity_key != member.identity_key => {
                return Err(RejoinRefusal::KeyChanged { nick: member.nick.clone() });
            }
            Some(_) => known += 1,
            None => newcomers.push(member.nick.clone()),
        }
    }
    if known == 0 && !departed.members.is_empty() {
        return Err(RejoinRefusal::NobodyWeKnew);
    }
    Ok(newcomers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(nick: &str, key: u8, is_self: bool) -> MemberInfo {
        MemberInfo {
            nick: nick.into(),
            fingerprint: String::new(),
            identity_key: vec![key; 32],
            device_key: vec![key; 32],
            is_self,
        }
    }

    fn departed() -> Departed {
        Departed {
            group_id: vec![7; 16],
            members: vec![member("alice", 1, false), member("carol", 3, false)],
        }
    }

    #[test]
    fn the_same_group_with_the_same_keys_is_accepted_and_newcomers_named() {
        let members = [member("alice", 1, false), member("bob", 9, true), member("dave", 4, false)];
        assert_eq!(check(&departed(), &[7; 16], &members), Ok(vec!["dave".to_owned()]));
    }

    #[test]
    fn another_group_or_a_changed_key_is_refused() {
        let members = [member("alice", 1, false), member("bob", 9, true)];
        assert_eq!(check(&departed(), &[8; 16], &members), Err(RejoinRefusal::OtherGroup));
        let fake_alice = [member("alice", 66, false), member("bob", 9, true)];
        assert_eq!(
            check(&departed(), &[7; 16], &fake_alice),
            Err(RejoinRefusal::KeyChanged { nick: "alice".into() })
        );
        let strangers = [member("mallory", 5, false), member("bob", 9, true)];
        assert_eq!(check(&departed(), &[7; 16], &strangers), Err(RejoinRefusal::NobodyWeKnew));
    }
}
