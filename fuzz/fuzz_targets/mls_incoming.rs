//! Incoming MLS messages into a live group, through the project's `mls` layer: whatever
//! the relay forwards, `RoomGroup::process_incoming` returns events or an error, never a
//! panic. Kept small on purpose: one member, one room, built once per process (the group
//! changes only on a message that verifies, which the fuzzer cannot forge).
#![no_main]

use chatter::mls::{MlsMember, RoomGroup};
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;

thread_local! {
    static ROOM: RefCell<Option<(MlsMember, RoomGroup)>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    ROOM.with(|room| {
        let mut room = room.borrow_mut();
        let (_, group) = room.get_or_insert_with(|| {
            let member = MlsMember::new("fuzz").expect("a member");
            let group = member.create_room().expect("a room");
            (member, group)
        });
        let _ = group.process_incoming(data);
    });
});
