//! The wording of [`RoomNotice`]s, and their line-mode form: `type` is the notice's name in
//! snake_case, with its fields beside the common ones (`docs/line-mode.md` lists them).

use serde_json::{Value, json};

use super::sanitize::sanitize_inline;
use crate::client::RoomNotice;

/// How a room notice reads: its line-mode `type`, its text, its own fields, and whether it
/// is a warning (yellow) rather than news (grey).
pub struct Worded {
    pub kind: &'static str,
    pub text: String,
    pub fields: Value,
    pub warning: bool,
}

pub fn word(notice: &RoomNotice) -> Worded {
    let worded = |kind, text: String, fields, warning| Worded { kind, text, fields, warning };
    match notice {
        RoomNotice::CommitAborted { committer, refuted } => {
            let who = sanitize_inline(committer);
            let text = if *refuted {
                format!("a key change by {who} was refused by the room and abandoned")
            } else {
                format!(
                    "a key change by {who} was not decided (members away, or the relay stopped it); it will be tried again"
                )
            };
            worded(
                "commit_aborted",
                text,
                json!({ "committer": committer, "refuted": refuted }),
                true,
            )
        }
        RoomNotice::CommitAbandoned { committer } => worded(
            "commit_abandoned",
            format!(
                "stopped waiting on a key change by {}: too few of the members it needed are still in the room",
                sanitize_inline(committer)
            ),
            json!({ "committer": committer }),
            true,
        ),
        RoomNotice::FoundingOutnumbered => worded(
            "founding_outnumbered",
            "the room's members came back after the relay restarted and hold the room: joining their group".into(),
            json!({}),
            false,
        ),
        RoomNotice::AcceptedAnother { committer } => worded(
            "accepted_another",
            format!(
                "refused a key change by {}: you already accepted another one for this epoch (a relay may be trying to split the room)",
                sanitize_inline(committer)
            ),
            json!({ "committer": committer }),
            true,
        ),
        RoomNotice::UnprovenConfirmation { yes, of } => worded(
            "unproven_confirmation",
            format!(
                "the relay confirmed a key change with the signed votes of only {yes} of {of} members; it was not applied"
            ),
            json!({ "yes": yes, "of": of }),
            true,
        ),
        RoomNotice::UnexpectedConfirmation => worded(
            "unexpected_confirmation",
            "the relay confirmed a key change you never accepted; ignored".into(),
            json!({}),
            true,
        ),
        RoomNotice::MaySplit { from } => worded(
            "may_split",
            format!(
                "a message from {} for this room's keys could not be read: this room may be split; compare /verify",
                sanitize_inline(from)
            ),
            json!({ "from": from }),
            true,
        ),
        RoomNotice::TakenOut { reason } => worded(
            "taken_out",
            format!(
                "the relay took you out of the room ({reason}); asking to be taken back as you were"
            ),
            json!({ "reason": format!("{reason:?}") }),
            true,
        ),
        RoomNotice::ReclaimWaiting { ours, holders } => worded(
            "reclaim_waiting",
            format!(
                "after the relay's restart, {holders} member(s) of another group hold the room and {ours} of yours are back; keeping your keys and waiting for the others"
            ),
            json!({ "ours": ours, "holders": holders }),
            false,
        ),
        RoomNotice::ReclaimRefused { reason } => worded(
            "reclaim_refused",
            format!(
                "could not get back into the room: {reason}; your keys are kept — /join it to come back"
            ),
            json!({ "reason": format!("{reason:?}") }),
            true,
        ),
        RoomNotice::RemovedByRoom { committer } => worded(
            "removed_by_room",
            format!(
                "a key change by {} that removes you was accepted by most of the room (their signed votes); you left the room — /join it to come back",
                sanitize_inline(committer)
            ),
            json!({ "committer": committer }),
            true,
        ),
        RoomNotice::KeysRenewed { nick } => worded(
            "keys_renewed",
            format!("{} has new keys in this room", sanitize_inline(nick)),
            json!({ "nick": nick }),
            false,
        ),
        RoomNotice::StaleKeys { hours } => worded(
            "stale_keys",
            format!(
                "your keys in this room are {hours} hours old and were not renewed: the leader does not commit your renewal; /rekey asks again"
            ),
            json!({ "hours": hours }),
            true,
        ),
        RoomNotice::OutOfStep => worded(
            "out_of_step",
            "your keys and the room's are out of step; you left the room — /join it to come back"
                .into(),
            json!({}),
            true,
        ),
    }
}
