//! The client core without sockets: frames, requests, link events and time are fed by
//! hand, and what comes out is read back.

use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::client::RoomNotice;
use crate::client::{
    ClientError, ConnectionEvent, LinkLoss, NotSentReason, Notice, SessionEnd, SharedError,
};
use crate::identity::{Identity, KnownPeers};
use crate::proto::{CommitRejection, ErrorReason, ReclaimRefusal, RemovalReason, RoomSummary};
use crate::secret::Secret;

const ROOM: &str = "lobby";

/// A core and the virtual clock it is fed.
struct Harness {
    core: Core,
    start: Instant,
    elapsed: Duration,
    next_request: u64,
}

impl Harness {
    /// Alice, just registered (her `Register` was frame 1).
    fn new() -> Harness {
        let mls = MlsMember::new("alice").unwrap();
        let trust = PeerTrust::new(Identity::generate(), KnownPeers::in_memory(), "relay");
        let numbers = SessionNumbers::registered(ResumeToken([1; 32]), 7);
        let start = Instant::now();
        let now = Now { instant: start, wall: SystemTime::UNIX_EPOCH };
        let core = Core::new("alice".into(), mls, trust, numbers, now, 42);
        Harness { core, start, elapsed: Duration::ZERO, next_request: 0 }
    }

    fn now(&self) -> Now {
        Now { instant: self.start + self.elapsed, wall: SystemTime::UNIX_EPOCH + self.elapsed }
    }

    /// Lets time pass to `instant`, and tells the core.
    fn pass_to(&mut self, instant: Instant) {
        self.elapsed = instant - self.start;
        self.core.handle_timeout(self.now());
    }

    fn request(&mut self, request: Request) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.core.handle_request(id, request, self.now());
        id
    }

    fn frame(&mut self, frame: ServerFrame) {
        self.core.handle_frame(frame, self.now());
    }

    /// The frames written since the last look, decoded.
    fn sent(&mut self) -> Vec<ClientFrame> {
        std::iter::from_fn(|| self.core.poll_transmit())
            .map(|bytes| proto::decode(&bytes).unwrap())
            .collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.core.poll_event()).collect()
    }

    fn answers(&mut self) -> Vec<(RequestId, Answer)> {
        std::iter::from_fn(|| self.core.poll_answer()).collect()
    }

    /// Joins `ROOM` as the first one in it: frame 2 is the `Join`.
    fn in_room(mut self) -> Harness {
        let join = self.request(Request::Join { room: ROOM.into(), password: Secret::from("pw") });
        assert!(only_a_join(&self.sent(), ROOM));
        self.frame(ServerFrame::RoomCreated { room: ROOM.into() });
        assert!(matches!(&self.answers()[..], [(id, Ok(Reply::Done))] if *id == join));
        self.events();
        self
    }

    /// The link drops: the core asks for a new one after the backoff.
    fn offline(&mut self) {
        self.core.link_lost(LinkLoss::Closed, self.now());
        assert!(!self.core.is_connected());
        let retry_at = self.core.poll_timeout().expect("a retry is scheduled");
        assert!(self.core.poll_dial().is_none(), "not before the backoff");
        self.pass_to(retry_at);
        assert!(self.core.poll_dial().is_some());
        assert!(self.core.poll_dial().is_none(), "one dial per attempt");
    }
}

fn text(line: &str) -> Request {
    Request::Send(ChatPayload::Text(line.into()))
}

#[test]
fn lines_typed_offline_wait_and_go_once_the_session_resumes() {
    let mut alice = Harness::new().in_room();
    alice.offline();
    let events = alice.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Connection(ConnectionEvent::Lost { reason: LinkLoss::Closed }),
                Event::Connection(ConnectionEvent::Reconnecting { attempt: 1, .. })
            ]
        ),
        "{events:?}"
    );

    let line = alice.request(text("typed offline"));
    assert!(matches!(&alice.answers()[..], [(id, Ok(Reply::Done))] if *id == line));
    assert_eq!(alice.events(), [Event::Connection(ConnectionEvent::Queued { waiting: 1 })]);
    assert_eq!(alice.core.link_state(), LinkState::Reconnecting { attempt: 1, waiting: 1 });
    assert!(alice.sent().is_empty(), "nothing is written without a link");

    // The relay had handled both of alice's frames (Register, Join) and kept nothing.
    alice.core.link_resumed(2, 0, ResumeToken([3; 32]), alice.now());
    let sent = alice.sent();
    assert!(
        matches!(&sent[..], [ClientFrame::Application { room, .. }, ClientFrame::Ack { .. }] if room == ROOM),
        "the queued line goes at once: {sent:?}"
    );
    assert_eq!(
        alice.events(),
        [
            Event::Connection(ConnectionEvent::Resumed { missed: 0 }),
            Event::Connection(ConnectionEvent::QueueSent { count: 1 }),
        ]
    );
    assert_eq!(alice.core.link_state(), LinkState::Connected);
}

#[test]
fn a_relay_error_answers_the_request_whose_frame_it_names() {
    let mut alice = Harness::new();
    let join = alice.request(Request::Join { room: ROOM.into(), password: Secret::from("pw") });
    let first = alice.request(Request::Rooms);
    let second = alice.request(Request::Rooms);
    // Register was 1: Join is 2, the lists 3 and 4.
    assert_eq!(alice.sent().len(), 3);

    alice.frame(ServerFrame::Error { request: 4, reason: ErrorReason::RateLimited });
    let answers = alice.answers();
    assert!(
        matches!(&answers[..], [(id, Err(ClientError::Relay(ErrorReason::RateLimited)))] if *id == second),
        "the second list, not the oldest waiting: {answers:?}"
    );
    alice.frame(ServerFrame::RoomList { rooms: Vec::new() });
    assert!(
        matches!(&alice.answers()[..], [(id, Ok(Reply::Rooms(rooms)))] if *id == first && rooms.is_empty())
    );

    alice.frame(ServerFrame::Error { request: 2, reason: ErrorReason::RoomFull });
    let answers = alice.answers();
    assert!(
        matches!(&answers[..], [(id, Err(ClientError::Relay(ErrorReason::RoomFull)))] if *id == join),
        "{answers:?}"
    );
    assert!(alice.events().is_empty(), "every error had its request: {:?}", alice.events());
}

#[test]
fn an_error_about_a_chat_line_is_about_that_line_and_its_room() {
    let mut alice = Harness::new().in_room();
    alice.request(Request::Rooms);
    alice.request(text("too much"));
    // Rooms is frame 3, the line frame 4 (the `Ack` after it has no number).
    assert!(matches!(
        &alice.sent()[..],
        [_, ClientFrame::Application { .. }, ClientFrame::Ack { .. }]
    ));
    alice.answers();
    alice.frame(ServerFrame::Error { request: 4, reason: ErrorReason::MessageTooLarge });
    assert_eq!(
        alice.events(),
        [Event::Status(Notice::MessageNotDelivered {
            room: ROOM.into(),
            text: "too much".into(),
            reason: ErrorReason::MessageTooLarge
        })]
    );
    assert!(alice.answers().is_empty(), "the list still waits for its answer");
    let summary = RoomSummary { name: ROOM.into(), members: 1 };
    alice.frame(ServerFrame::RoomList { rooms: vec![summary] });
    assert!(matches!(&alice.answers()[..], [(_, Ok(Reply::Rooms(_)))]));
}

#[test]
fn quitting_while_offline_ends_the_session_at_once() {
    let mut alice = Harness::new().in_room();
    alice.offline();
    alice.request(text("typed offline"));
    alice.events();
    alice.answers();

    let quit = alice.request(Request::Quit);
    assert!(matches!(&alice.answers()[..], [(id, Ok(Reply::Done))] if *id == quit));
    assert!(alice.core.is_closed());
    assert_eq!(alice.core.link_state(), LinkState::Closed);
    assert_eq!(
        alice.events(),
        [Event::Connection(ConnectionEvent::NotSent {
            texts: vec!["typed offline".into()],
            reason: NotSentReason::SessionEnded,
        })],
        "the user quit: no Disconnected, only the lines that will not go"
    );
    assert_eq!(alice.core.poll_timeout(), None, "no more attempts");
    assert!(alice.sent().is_empty());
}

#[test]
fn a_silent_link_is_lost_after_fifteen_seconds_and_a_heard_one_is_not() {
    let mut alice = Harness::new();
    let start = alice.start;
    alice.pass_to(start + Duration::from_secs(5));
    assert!(matches!(&alice.sent()[..], [ClientFrame::Ping, ClientFrame::Ack { .. }]));
    alice.pass_to(start + Duration::from_secs(10));
    alice.frame(ServerFrame::Pong);
    alice.pass_to(start + Duration::from_secs(15));
    alice.pass_to(start + Duration::from_secs(20));
    assert!(alice.core.is_connected(), "heard from 10 s ago");
    alice.pass_to(start + Duration::from_secs(25));
    assert!(!alice.core.is_connected());
    let lost =
        ConnectionEvent::Lost { reason: LinkLoss::Silent { after: Duration::from_secs(15) } };
    assert_eq!(alice.events().first(), Some(&Event::Connection(lost)));
}

#[test]
fn only_a_failure_waiting_cannot_fix_ends_the_session() {
    let mut alice = Harness::new();
    alice.offline();
    alice.events();
    let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let unreachable = ClientError::Unreachable { server: "relay".into(), error: refused };
    alice.core.dial_failed(unreachable, alice.now());
    let events = alice.events();
    assert!(
        matches!(&events[..], [Event::Connection(ConnectionEvent::Reconnecting { attempt: 2, last_error: Some(error), .. })]
            if matches!(error.get(), ClientError::Unreachable { .. })),
        "{events:?}"
    );
    let retry_at = alice.core.poll_timeout().unwrap();
    alice.pass_to(retry_at);
    assert!(alice.core.poll_dial().is_some());
    alice.core.dial_failed(ClientError::WrongAccessCode, alice.now());
    assert!(alice.core.is_closed());
    let events = alice.events();
    assert!(
        matches!(&events[..], [Event::Disconnected(SessionEnd::CannotReconnect(error))]
            if matches!(error.get(), ClientError::WrongAccessCode)),
        "{events:?}"
    );
}

#[test]
fn joining_the_room_we_are_in_neither_leaves_nor_joins() {
    let mut alice = Harness::new().in_room();
    let join = alice.request(Request::Join { room: ROOM.into(), password: Secret::from("typo") });
    assert_eq!(alice.sent(), [], "no Leave, no Join");
    assert!(matches!(&alice.answers()[..], [(id, Err(ClientError::AlreadyInRoom(room)))]
            if *id == join && room == ROOM));
    assert_eq!(alice.core.member_rooms(), [ROOM]);
    assert!(alice.events().is_empty());
}

impl Harness {
    /// Founds `room` as well, keeping the rooms we are in; it becomes current.
    fn also_in(&mut self, room: &str) {
        let join = self.request(Request::Join { room: room.into(), password: Secret::default() });
        assert!(only_a_join(&self.sent(), room), "no Leave");
        self.frame(ServerFrame::RoomCreated { room: room.into() });
        assert!(matches!(&self.answers()[..], [(id, Ok(Reply::Done))] if *id == join));
        self.events();
    }

    fn tabs(&self) -> Vec<(String, bool)> {
        self.core.room_tabs().into_iter().map(|tab| (tab.name, tab.current)).collect()
    }
}

fn tabs(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(name, current)| ((*name).to_owned(), *current)).collect()
}

#[test]
fn joining_another_room_keeps_the_first_and_joining_it_again_only_makes_it_current() {
    let mut alice = Harness::new().in_room();
    alice.also_in("ops");
    assert_eq!(alice.tabs(), tabs(&[(ROOM, false), ("ops", true)]));
    assert_eq!(alice.core.member_rooms(), [ROOM, "ops"]);

    let again = alice.request(Request::Join { room: ROOM.into(), password: Secret::default() });
    assert_eq!(alice.sent(), [], "neither a Leave nor a Join");
    assert!(
        matches!(&alice.answers()[..], [(id, Err(ClientError::AlreadyInRoom(_)))] if *id == again)
    );
    assert_eq!(alice.tabs(), tabs(&[(ROOM, true), ("ops", false)]));

    let switch = alice.request(Request::Switch { target: "2".into() });
    assert!(
        matches!(&alice.answers()[..], [(id, Ok(Reply::Switched(room)))] if *id == switch && room == "ops")
    );
    let nowhere = alice.request(Request::Switch { target: "3".into() });
    assert!(
        matches!(&alice.answers()[..], [(id, Err(ClientError::NoSuchRoom(_)))] if *id == nowhere)
    );
    assert_eq!(alice.core.shown_room().as_deref(), Some("ops"), "a failed switch changes nothing");
}

#[test]
fn parting_one_room_keeps_the_others_and_the_one_before_becomes_current() {
    let mut alice = Harness::new().in_room();
    alice.also_in("ops");
    alice.also_in("qa");
    alice.request(Request::Leave { room: Some("ops".into()) });
    assert!(matches!(alice.sent().last(), Some(ClientFrame::Leave { room }) if room == "ops"));
    assert_eq!(alice.tabs(), tabs(&[(ROOM, false), ("qa", true)]), "the current room stays");
    alice.request(Request::Leave { room: None });
    assert!(matches!(alice.sent().last(), Some(ClientFrame::Leave { room }) if room == "qa"));
    assert_eq!(alice.tabs(), tabs(&[(ROOM, true)]), "never left in no room while in one");
}

#[test]
fn a_client_is_in_at_most_max_rooms_and_is_told_so() {
    let mut alice = Harness::new();
    for n in 0..MAX_ROOMS {
        alice.request(Request::Join { room: format!("r{n}"), password: Secret::default() });
    }
    assert_eq!(alice.sent().len(), MAX_ROOMS);
    let over =
        alice.request(Request::Join { room: "one-more".into(), password: Secret::default() });
    assert_eq!(alice.sent(), [], "nothing asked of the relay");
    assert!(
        matches!(&alice.answers()[..], [(id, Err(ClientError::TooManyRooms { max: MAX_ROOMS }))] if *id == over)
    );
    assert_eq!(alice.core.room_tabs().len(), MAX_ROOMS);
}

#[test]
fn a_line_typed_offline_goes_to_the_room_it_was_typed_for() {
    let mut alice = Harness::new().in_room();
    alice.also_in("ops");
    alice.offline();
    alice.request(text("for ops"));
    alice.request(Request::Switch { target: ROOM.into() });
    alice.request(text("for lobby"));
    alice.request(Request::Switch { target: "ops".into() });
    alice.answers();
    alice.events();
    // The relay had handled Register and both Joins.
    alice.core.link_resumed(3, 0, ResumeToken([3; 32]), alice.now());
    let rooms: Vec<String> = alice
        .sent()
        .into_iter()
        .filter_map(|frame| match frame {
            ClientFrame::Application { room, .. } => Some(room),
            _ => None,
        })
        .collect();
    assert_eq!(rooms, ["ops", ROOM], "each line to its own room, in the order typed");
}

/// After a relay restart every room is asked back; one refused drops only its own lines,
/// and the other room, taken back, gets the lines typed for it.
#[test]
fn a_restart_reclaims_every_room_and_a_refused_one_drops_only_its_lines() {
    let mut alice = Harness::new().in_room();
    alice.also_in("ops");
    alice.offline();
    alice.request(text("for ops"));
    alice.request(Request::Switch { target: ROOM.into() });
    alice.request(text("for lobby"));
    alice.events();
    alice.answers();
    let numbers = SessionNumbers::registered(ResumeToken([2; 32]), 8);
    alice.core.link_registered(numbers, alice.now());
    let reclaimed: Vec<String> = alice
        .sent()
        .into_iter()
        .filter_map(|frame| match frame {
            ClientFrame::Reclaim { room, .. } => Some(room),
            _ => None,
        })
        .collect();
    assert_eq!(reclaimed, [ROOM, "ops"], "every room is asked back");
    alice.events();
    let reason = ReclaimRefusal::AnotherGroup;
    alice.frame(ServerFrame::ReclaimRefused { room: "ops".into(), reason: reason.clone() });
    let events = alice.events();
    assert!(
        events.contains(&Event::Connection(ConnectionEvent::NotSent {
            texts: vec!["for ops".into()],
            reason: NotSentReason::NoLongerInRoom,
        })),
        "{events:?}"
    );
    assert_eq!(alice.tabs(), tabs(&[(ROOM, true)]));
    alice.frame(ServerFrame::Reclaimed {
        room: ROOM.into(),
        members: vec!["alice".into()],
        epoch: 0,
    });
    let sent = alice.sent();
    assert!(
        sent.iter()
            .any(|frame| matches!(frame, ClientFrame::Application { room, .. } if room == ROOM)),
        "the line for lobby goes once lobby is back: {sent:?}"
    );
    assert_eq!(alice.core.link_state(), LinkState::Connected);
}

#[test]
fn a_blocked_address_is_told_once_and_pauses_the_retries_for_a_minute() {
    use crate::proto::HelloRejection;
    let mut alice = Harness::new();
    alice.offline();
    alice.events();
    let before = alice.now().instant;
    alice.core.dial_failed(ClientError::Refused(HelloRejection::Blocked), alice.now());
    let events = alice.events();
    assert!(
        matches!(&events[..], [
            Event::Status(Notice::AddressBlocked { retry_in }),
            Event::Connection(ConnectionEvent::Reconnecting { attempt: 2, .. }),
        ] if *retry_in == Duration::from_secs(60)),
        "{events:?}"
    );
    let retry_at = alice.core.poll_timeout().unwrap();
    assert_eq!(retry_at - before, Duration::from_secs(60));
    alice.pass_to(retry_at - Duration::from_millis(1));
    assert!(alice.core.poll_dial().is_none(), "not before the minute is over");
    alice.pass_to(retry_at);
    assert!(alice.core.poll_dial().is_some(), "then it tries again: the refusal may be forged");
    // Blocked again: the pause again, but not the notice.
    alice.core.dial_failed(ClientError::Refused(HelloRejection::Blocked), alice.now());
    let events = alice.events();
    assert!(
        matches!(
            &events[..],
            [Event::Connection(ConnectionEvent::Reconnecting { attempt: 3, .. })]
        ),
        "{events:?}"
    );
    assert!(alice.core.poll_timeout().unwrap() - alice.now().instant >= Duration::from_secs(60));
    assert!(!alice.core.is_closed());
}

/// A laptop that slept five minutes notices the dead link only when it wakes (its monotonic
/// clock did not count the sleep); what it missed is since the relay was last heard from.
#[test]
fn offline_since_is_when_the_relay_was_last_heard_not_when_the_loss_was_noticed() {
    let mut alice = Harness::new().in_room();
    alice.pass_to(alice.start + Duration::from_secs(4));
    alice.frame(ServerFrame::Pong);
    let last_heard = alice.now().wall;
    let woke = Now {
        instant: alice.now().instant + Duration::from_secs(1),
        wall: last_heard + Duration::from_secs(300),
    };
    alice.core.link_lost(LinkLoss::Closed, woke);
    let retry_at = alice.core.poll_timeout().unwrap();
    let dial_time = Now { instant: retry_at, wall: woke.wall + Duration::from_secs(1) };
    alice.core.handle_timeout(dial_time);
    assert!(alice.core.poll_dial().is_some());
    alice.events();
    let numbers = SessionNumbers::registered(ResumeToken([2; 32]), 8);
    alice.core.link_registered(numbers, dial_time);
    let events = alice.events();
    assert!(
        events.iter().any(|event| matches!(event,
            Event::Connection(ConnectionEvent::Reconnected { offline_since, .. })
                if *offline_since == last_heard)),
        "{events:?}"
    );
}

/// Alice away with a line typed offline; the relay restarted, and she asked for the room
/// back as it was (her new session's frame 2 is the `Reclaim`).
fn reclaiming_after_a_relay_restart() -> Harness {
    let mut alice = Harness::new().in_room();
    alice.offline();
    alice.request(text("typed offline"));
    alice.events();
    alice.answers();
    // The relay restarted (another boot): a new session, whose Register was its frame 1.
    let numbers = SessionNumbers::registered(ResumeToken([2; 32]), 8);
    alice.core.link_registered(numbers, alice.now());
    let sent = alice.sent();
    assert!(matches!(&sent[..], [ClientFrame::Reclaim { room, .. }] if room == ROOM), "{sent:?}");
    let events = alice.events();
    assert!(
        matches!(
            &events[..],
            [Event::Connection(ConnectionEvent::Reconnected { relay_restarted: true, .. })]
        ),
        "{events:?}"
    );
    alice
}

/// Protocol 5: the relay refuses a reclaim with `ReclaimRefused` (protocol 4 sent an
/// `Error`); the room gives up, and the core drops it with the lines typed for it.
#[test]
fn a_room_re_created_by_others_while_we_were_away_is_given_up_with_its_lines() {
    let mut alice = reclaiming_after_a_relay_restart();
    let reason = ReclaimRefusal::AnotherGroup;
    alice.frame(ServerFrame::ReclaimRefused { room: ROOM.into(), reason: reason.clone() });
    assert_eq!(
        alice.events(),
        [
            Event::Room { room: ROOM.into(), notice: RoomNotice::ReclaimRefused { reason } },
            Event::Connection(ConnectionEvent::NotSent {
                texts: vec!["typed offline".into()],
                reason: NotSentReason::NoLongerInRoom,
            }),
        ]
    );
    assert_eq!(alice.core.shown_room(), None);
    assert!(alice.sent().is_empty(), "no join of its own: the user's /join starts one");
    let line = alice.request(text("hello?"));
    assert!(matches!(&alice.answers()[..], [(id, Err(ClientError::NotInRoom))] if *id == line));
}

/// A relay that refuses the `Reclaim` frame itself (an `Error`, e.g. over the rate limit)
/// leaves the room as lost as a `ReclaimRefused`, worded the same way.
#[test]
fn a_reclaim_refused_by_an_error_gives_the_room_up_too() {
    let mut alice = reclaiming_after_a_relay_restart();
    alice.frame(ServerFrame::Error { request: 2, reason: ErrorReason::RoomIsAnotherGroup });
    assert_eq!(
        alice.events(),
        [
            Event::Connection(ConnectionEvent::NotSent {
                texts: vec!["typed offline".into()],
                reason: NotSentReason::RoomIsAnotherGroup,
            }),
            Event::Room {
                room: ROOM.into(),
                notice: RoomNotice::ReclaimRefused { reason: ReclaimRefusal::AnotherGroup },
            },
        ]
    );
    assert_eq!(alice.core.shown_room(), None);
}

/// `ReclaimPending` and `ReclaimRefused` are frames about a room: they reach it.
#[test]
fn a_reclaim_that_waits_is_reported_by_the_room_and_keeps_it() {
    let mut alice = reclaiming_after_a_relay_restart();
    alice.frame(ServerFrame::ReclaimPending { room: ROOM.into(), ours: 1, holders: 2 });
    let waiting = RoomNotice::ReclaimWaiting { ours: 1, holders: 2 };
    assert_eq!(alice.events(), [Event::Room { room: ROOM.into(), notice: waiting }]);
    assert_eq!(alice.core.shown_room().as_deref(), Some(ROOM), "still ours, waiting");
    alice.frame(ServerFrame::Reclaimed {
        room: ROOM.into(),
        members: vec!["alice".into()],
        epoch: 0,
    });
    assert!(alice.core.shown_room().is_some());
    alice.events();
    // Back, and alone: the line typed offline goes once the others are (all of none).
    let sent = alice.sent();
    assert!(
        matches!(&sent[..], [ClientFrame::Application { .. }, ClientFrame::Ack { .. }]),
        "{sent:?}"
    );
}

/// The relay takes a member out: it asks for its place back as it was (`Reclaim`), never
/// with a `Join` (protocol 4 rejoined through the password exchange).
#[test]
fn a_member_taken_out_asks_for_its_place_back_and_never_joins_by_itself() {
    let mut alice = Harness::new().in_room();
    alice.frame(ServerFrame::Removed { room: ROOM.into(), reason: RemovalReason::NoVote });
    let sent = alice.sent();
    assert!(matches!(&sent[..], [ClientFrame::Reclaim { room, .. }] if room == ROOM), "{sent:?}");
    let taken_out = RoomNotice::TakenOut { reason: RemovalReason::NoVote };
    assert_eq!(alice.events(), [Event::Room { room: ROOM.into(), notice: taken_out }]);
    assert_eq!(alice.core.shown_room().as_deref(), Some(ROOM));
    // Told again while asking (sent before the relay read the `Reclaim`): about the same
    // membership, so the request stands; no join follows either.
    alice.frame(ServerFrame::Removed { room: ROOM.into(), reason: RemovalReason::NoVote });
    assert!(alice.sent().is_empty());
    assert_eq!(alice.core.shown_room().as_deref(), Some(ROOM));
    // The relay's answer settles it: refused, the room is gone, and still no join.
    alice
        .frame(ServerFrame::ReclaimRefused { room: ROOM.into(), reason: ReclaimRefusal::TakenOut });
    assert!(alice.sent().is_empty());
    assert_eq!(alice.core.shown_room(), None);
}

/// Taken out while still joining: the room is gone, and the `/join` waiting for it ends.
#[test]
fn a_joiner_taken_out_is_out_and_its_join_is_answered() {
    let mut alice = Harness::new();
    let join = alice.request(Request::Join { room: ROOM.into(), password: Secret::from("pw") });
    alice.sent();
    alice.frame(ServerFrame::Removed { room: ROOM.into(), reason: RemovalReason::NoVote });
    assert!(alice.sent().is_empty(), "no join restarts");
    let answers = alice.answers();
    assert!(
        matches!(&answers[..], [(id, Err(ClientError::RoomGone))] if *id == join),
        "{answers:?}"
    );
    assert_eq!(alice.core.shown_room(), None);
}

/// The token a resume brings replaces the one used: the next resume presents it.
#[test]
fn a_resume_rotates_the_token_the_next_one_presents() {
    let mut alice = Harness::new();
    alice.offline();
    alice.core.link_resumed(1, 0, ResumeToken([5; 32]), alice.now());
    alice.core.link_lost(LinkLoss::Closed, alice.now());
    let retry_at = alice.core.poll_timeout().unwrap();
    alice.pass_to(retry_at);
    let dial = alice.core.poll_dial().expect("a dial");
    assert_eq!(dial.token, ResumeToken([5; 32]));
}

/// Leaving a room says farewell first (so that those who stay can count it), whether by
/// `/leave`, by a `/join` of another room, or by quitting.
#[test]
fn leaving_a_room_says_farewell_just_before_the_leave_or_the_quit() {
    let is_farewell = |frame: &ClientFrame| matches!(frame, ClientFrame::Application { room, .. } if room == ROOM);
    let mut alice = Harness::new().in_room();
    alice.request(Request::Leave { room: None });
    let sent = alice.sent();
    assert!(
        matches!(&sent[..], [farewell, ClientFrame::Leave { room }] if is_farewell(farewell) && room == ROOM),
        "{sent:?}"
    );

    // A farewell to one of several rooms: to that room, just before its `Leave`.
    let mut alice = Harness::new().in_room();
    alice.also_in("elsewhere");
    alice.request(Request::Leave { room: Some(ROOM.into()) });
    let sent = alice.sent();
    assert!(
        matches!(&sent[..], [farewell, ClientFrame::Leave { room }] if is_farewell(farewell) && room == ROOM),
        "{sent:?}"
    );

    let mut alice = Harness::new().in_room();
    alice.request(Request::Quit);
    let sent = alice.sent();
    assert!(
        matches!(&sent[..], [farewell, ClientFrame::Quit] if is_farewell(farewell)),
        "{sent:?}"
    );

    let mut alice = Harness::new().in_room();
    alice.core.abandon();
    let sent = alice.sent();
    assert!(
        matches!(&sent[..], [farewell, ClientFrame::Quit] if is_farewell(farewell)),
        "{sent:?}"
    );
}

/// The keepalive's tick is the room's too: a commit the relay could not take to a vote
/// (busy) goes again, unchanged, at the next tick.
#[test]
fn a_commit_the_relay_was_too_busy_for_goes_again_at_the_tick() {
    let mut alice = Harness::new().in_room();
    let bob_mls = MlsMember::new("bob").unwrap();
    let mut bob = crate::client::room::Room::new(ROOM.into(), Secret::from("pw")).joining_as("bob");
    let ClientFrame::Join { pake_message, .. } = bob.join_frame() else { panic!("join") };
    bob.admission_pending("alice".into()).unwrap();
    let joiner = String::from("bob");
    let room = String::from(ROOM);
    alice.frame(ServerFrame::AdmissionRequest {
        room: room.clone(),
        joiner: joiner.clone(),
        attempt: 1,
        pake_message,
    });
    let sent = alice.sent();
    let [ClientFrame::AdmissionReply { pake_message, .. }] = &sent[..] else { panic!("{sent:?}") };
    let ClientFrame::AdmissionFinish { confirmation, sealed_key_package, .. } =
        bob.admission_reply(&bob_mls, pake_message, RoomSuite::Classic.id()).unwrap()
    else {
        panic!("finish")
    };
    alice.frame(ServerFrame::AdmissionFinish {
        room: room.clone(),
        joiner,
        attempt: 1,
        confirmation,
        sealed_key_package,
    });
    let sent = alice.sent();
    let [commit @ ClientFrame::Commit { .. }] = &sent[..] else { panic!("{sent:?}") };
    let commit = commit.clone();
    let ClientFrame::Commit { commit: bytes, .. } = &commit else { unreachable!() };
    let hash = crate::proto::commit_hash(bytes);
    alice.frame(ServerFrame::CommitRejected { room, commit: hash, reason: CommitRejection::Busy });
    assert!(alice.sent().is_empty(), "not before the tick");
    let tick = alice.core.poll_timeout().unwrap();
    alice.pass_to(tick);
    let sent = alice.sent();
    assert!(
        matches!(&sent[..], [ClientFrame::Ping, ClientFrame::Ack { .. }, again] if *again == commit),
        "{sent:?}"
    );
}

#[test]
fn shared_errors_compare_by_what_they_say() {
    let one = SharedError::from(ClientError::WrongAccessCode);
    assert_eq!(one, one.clone());
    assert_eq!(one, SharedError::from(ClientError::WrongAccessCode));
    assert_ne!(one, SharedError::from(ClientError::NotInRoom));
}

/// A member ignores answers to a join it is not making (a relay replaying or making them
/// up): it says so, and neither leaves nor starts a password exchange.
#[test]
fn a_member_ignores_join_answers_it_did_not_ask_for() {
    let mut alice = Harness::new().in_room();
    let room = String::from(ROOM);
    let stray = [
        ServerFrame::RoomCreated { room: room.clone() },
        ServerFrame::JoinPending { room: room.clone(), leader: "mallory".into() },
        ServerFrame::AdmissionReply {
            room: room.clone(),
            leader: "mallory".into(),
            pake_message: vec![1; 33],
            suite: crate::mls::RoomSuite::Classic.id(),
        },
        ServerFrame::AdmissionRefused {
            room: room.clone(),
            reason: crate::proto::AdmissionRefusal::LeaderChanged,
        },
        ServerFrame::AdmissionRefused {
            room: room.clone(),
            reason: crate::proto::AdmissionRefusal::Banned,
        },
    ];
    for frame in stray {
        alice.frame(frame);
        let sent = alice.sent();
        assert!(sent.is_empty(), "nothing sent: {sent:?}");
        let events = alice.events();
        assert!(
            matches!(&events[..], [Event::Warning { text, .. }] if text.starts_with("ignored")),
            "{events:?}"
        );
    }
    assert!(alice.core.rooms.current().is_some_and(|entry| entry.room.is_member()));
}

/// A room we founded a moment ago, while after a relay restart its members were still on
/// their way back, goes to them: we say so and join their group, rather than losing the
/// room.
#[test]
fn a_room_just_founded_goes_to_its_returning_members_and_the_join_goes_on() {
    let outnumbered =
        ServerFrame::ReclaimRefused { room: ROOM.into(), reason: ReclaimRefusal::Outnumbered };
    let mut alice = Harness::new().in_room();
    alice.frame(outnumbered.clone());
    assert!(only_a_join(&alice.sent(), ROOM));
    let events = alice.events();
    assert!(
        events.iter().any(|event| matches!(
            event,
            Event::Room { notice: RoomNotice::FoundingOutnumbered, .. }
        )),
        "{events:?}"
    );
    alice.frame(ServerFrame::JoinPending { room: ROOM.into(), leader: "bob".into() });
    assert!(alice.sent().is_empty(), "the leader has our half of the exchange already");
}

/// A join under way when the relay restarts starts over at the next tick, not at once: the
/// room's members, back at once, re-form it first, and the joiner is admitted into their
/// group rather than founding the room anew before them.
#[test]
fn a_join_cut_short_by_a_restart_starts_over_at_the_next_tick() {
    let mut alice = Harness::new();
    alice.request(Request::Join { room: ROOM.into(), password: Secret::from("pw") });
    assert!(only_a_join(&alice.sent(), ROOM));
    alice.frame(ServerFrame::JoinPending { room: ROOM.into(), leader: "bob".into() });
    assert!(alice.sent().is_empty());
    alice.offline();
    let numbers = SessionNumbers::registered(ResumeToken([2; 32]), 8);
    alice.core.link_registered(numbers, alice.now());
    assert!(alice.sent().is_empty(), "not at once");
    let tick = alice.core.poll_timeout().unwrap();
    alice.pass_to(tick);
    let sent = alice.sent();
    assert!(
        sent.iter().any(|frame| matches!(frame, ClientFrame::Join { room, .. } if room == ROOM)),
        "{sent:?}"
    );
}

/// A room the relay took us back into is epochs ahead of our group: a line typed meanwhile
/// would be for an epoch the others left (the relay passes it to none of them), so it waits
/// until we have caught up, as it would offline.
#[test]
fn lines_wait_while_the_room_we_are_back_in_is_ahead_of_our_group() {
    let mut alice = reclaiming_after_a_relay_restart();
    alice.frame(ServerFrame::Reclaimed {
        room: ROOM.into(),
        members: vec!["alice".into()],
        epoch: 1,
    });
    let sent = alice.sent();
    assert!(
        !sent.iter().any(|frame| matches!(frame, ClientFrame::Application { .. })),
        "the line typed offline waits: {sent:?}"
    );
    let later = alice.request(text("typed while behind"));
    assert!(matches!(&alice.answers()[..], [(id, Ok(Reply::Done))] if *id == later));
    let events = alice.events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Connection(ConnectionEvent::Queued { waiting: 2 }))),
        "{events:?}"
    );
    assert!(alice.sent().is_empty());
}

#[test]
fn a_line_typed_while_behind_the_room_waits_too() {
    let mut alice = Harness::new().in_room();
    alice.offline();
    alice.events();
    let numbers = SessionNumbers::registered(ResumeToken([2; 32]), 8);
    alice.core.link_registered(numbers, alice.now());
    alice.sent();
    alice.frame(ServerFrame::Reclaimed {
        room: ROOM.into(),
        members: vec!["alice".into()],
        epoch: 1,
    });
    alice.events();
    let line = alice.request(text("typed while behind"));
    assert!(matches!(&alice.answers()[..], [(id, Ok(Reply::Done))] if *id == line));
    assert_eq!(alice.events(), [Event::Connection(ConnectionEvent::Queued { waiting: 1 })]);
    assert!(alice.sent().is_empty());
}

/// Whether `sent` is one `Join` of `room` (its password-exchange message is random).
fn only_a_join(sent: &[ClientFrame], room: &str) -> bool {
    matches!(sent, [ClientFrame::Join { room: joined, .. }] if joined == room)
}
