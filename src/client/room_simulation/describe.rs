//! Short, byte-free descriptions of frames for the step log.

use crate::mls_header;
use crate::proto::{ClientFrame, ServerFrame, SignedVote};

/// The variant name: what `Cause` and the log call a frame.
pub fn kind(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Registered { .. } => "Registered",
        ServerFrame::Resumed { .. } => "Resumed",
        ServerFrame::ResumeRefused { .. } => "ResumeRefused",
        ServerFrame::Ack { .. } => "Ack",
        ServerFrame::Reclaimed { .. } => "Reclaimed",
        ServerFrame::ReclaimPending { .. } => "ReclaimPending",
        ServerFrame::ReclaimRefused { .. } => "ReclaimRefused",
        ServerFrame::MemberAway { .. } => "MemberAway",
        ServerFrame::RoomList { .. } => "RoomList",
        ServerFrame::MemberList { .. } => "MemberList",
        ServerFrame::RoomCreated { .. } => "RoomCreated",
        ServerFrame::JoinPending { .. } => "JoinPending",
        ServerFrame::AdmissionRequest { .. } => "AdmissionRequest",
        ServerFrame::AdmissionReply { .. } => "AdmissionReply",
        ServerFrame::AdmissionFinish { .. } => "AdmissionFinish",
        ServerFrame::AdmissionRefused { .. } => "AdmissionRefused",
        ServerFrame::Welcome { .. } => "Welcome",
        ServerFrame::Commit { .. } => "Commit",
        ServerFrame::CommitConfirmed { .. } => "CommitConfirmed",
        ServerFrame::CommitAborted { .. } => "CommitAborted",
        ServerFrame::CommitRejected { .. } => "CommitRejected",
        ServerFrame::Application { .. } => "Application",
        ServerFrame::MemberJoined { .. } => "MemberJoined",
        ServerFrame::MemberLeft { .. } => "MemberLeft",
        ServerFrame::LeaderChanged { .. } => "LeaderChanged",
        ServerFrame::Removed { .. } => "Removed",
        ServerFrame::Left { .. } => "Left",
        ServerFrame::Pong => "Pong",
        ServerFrame::Error { .. } => "Error",
        ServerFrame::Goodbye { .. } => "Goodbye",
        ServerFrame::Restarting => "Restarting",
    }
}

fn voters(votes: &[SignedVote]) -> Vec<&str> {
    votes.iter().map(|vote| vote.from.as_str()).collect()
}

fn epoch_of(message: &[u8]) -> String {
    mls_header::peek_header(message).map_or("?".into(), |header| header.epoch.to_string())
}

pub fn server(frame: &ServerFrame) -> String {
    match frame {
        ServerFrame::Reclaimed { members, .. } => format!("Reclaimed {members:?}"),
        ServerFrame::ReclaimPending { ours, holders, .. } => {
            format!("ReclaimPending ours={ours} holders={holders}")
        }
        ServerFrame::ReclaimRefused { reason, .. } => format!("ReclaimRefused {reason:?}"),
        ServerFrame::MemberAway { nick, away, .. } => format!("MemberAway {nick} away={away}"),
        ServerFrame::JoinPending { leader, .. } => format!("JoinPending leader={leader}"),
        ServerFrame::AdmissionRequest { joiner, attempt, .. } => {
            format!("AdmissionRequest {joiner}#{attempt}")
        }
        ServerFrame::AdmissionReply { leader, .. } => format!("AdmissionReply from {leader}"),
        ServerFrame::AdmissionFinish { joiner, attempt, .. } => {
            format!("AdmissionFinish {joiner}#{attempt}")
        }
        ServerFrame::AdmissionRefused { reason, .. } => format!("AdmissionRefused {reason:?}"),
        ServerFrame::Welcome { members, .. } => format!("Welcome {members:?}"),
        ServerFrame::Commit { from, commit, joiner, .. } => {
            format!("Commit from {from} epoch {} joiner {joiner:?}", epoch_of(commit))
        }
        ServerFrame::CommitConfirmed { epoch, votes, .. } => {
            format!("CommitConfirmed -> {epoch} yes={:?}", voters(votes))
        }
        ServerFrame::CommitAborted { epoch, votes, .. } => {
            format!("CommitAborted {epoch} no={:?}", voters(votes))
        }
        ServerFrame::CommitRejected { reason, .. } => format!("CommitRejected {reason:?}"),
        ServerFrame::Application { from, message, .. } => {
            format!("Application from {from} epoch {}", epoch_of(message))
        }
        ServerFrame::MemberJoined { nick, .. } => format!("MemberJoined {nick}"),
        ServerFrame::MemberLeft { nick, leader, .. } => {
            format!("MemberLeft {nick} leader={leader}")
        }
        ServerFrame::LeaderChanged { leader, .. } => format!("LeaderChanged {leader}"),
        ServerFrame::Removed { reason, .. } => format!("Removed {reason:?}"),
        ServerFrame::Error { reason, .. } => format!("Error {reason:?}"),
        ServerFrame::Ack { received } => format!("Ack {received}"),
        other => kind(other).into(),
    }
}

pub fn client(frame: &ClientFrame) -> String {
    match frame {
        ClientFrame::Register { nick } => format!("Register {nick}"),
        ClientFrame::Join { .. } => "Join".into(),
        ClientFrame::Leave { .. } => "Leave".into(),
        ClientFrame::Reclaim { epoch, .. } => format!("Reclaim epoch {epoch}"),
        ClientFrame::AdmissionReply { joiner, attempt, .. } => {
            format!("AdmissionReply {joiner}#{attempt}")
        }
        ClientFrame::AdmissionFinish { .. } => "AdmissionFinish".into(),
        ClientFrame::AdmissionRefused { joiner, attempt, reason, .. } => {
            format!("AdmissionRefused {joiner}#{attempt} {reason:?}")
        }
        ClientFrame::Commit { commit, adds, electorate, .. } => format!(
            "Commit epoch {} electorate {electorate} adds {:?}",
            epoch_of(commit),
            adds.as_ref().map(|adds| &adds.to)
        ),
        ClientFrame::Welcome { welcome, .. } => format!("Welcome to {}", welcome.to),
        ClientFrame::CommitVote { epoch, accept, .. } => {
            format!("CommitVote {epoch} {}", if *accept { "yes" } else { "no" })
        }
        ClientFrame::Application { message, .. } => {
            format!("Application epoch {}", epoch_of(message))
        }
        ClientFrame::Ack { received } => format!("Ack {received}"),
        other => format!("{other:?}"),
    }
}
