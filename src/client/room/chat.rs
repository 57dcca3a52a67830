//! Chat: encrypting our lines, opening everyone else's, and saying what could not be read.

use super::*;

impl Room {
    /// An application message from another member.
    pub fn incoming_message(
        &mut self,
        from: &str,
        message: &[u8],
        now: SystemTime,
        out: &mut Outbox,
    ) {
        let room = self.name.clone();
        let Some(membership) = self.membership() else { return };
        match membership.group.open_application(message) {
            Ok(opened) => {
                let Some(payload) = opened.payload.clone() else { return };
                let signer = opened.from.clone();
                if signer != from {
                    out.warn(
                        &room,
                        format!("the relay said a message came from {from}, but {signer} signed it"),
                    );
                }
                match proto::decode::<GroupMessage>(&payload) {
                    Ok(GroupMessage::Chat(envelope)) => {
                        if let Some(gap) = self.gaps.observe(&signer, envelope.number, now) {
                            out.events.push(Event::Gap {
                                room: room.clone(),
                                from: gap.from,
                                missed: gap.missed,
                                since: gap.since,
                            });
                        }
                        chat_event(&room, signer, envelope.payload, now, out);
                    }
                    Ok(GroupMessage::Farewell(farewell)) => {
                        // Counted when the relay says the member left (`member_left`).
                        membership.farewells.retain(|(leaf, _)| *leaf != opened.leaf);
                        membership.farewells.push((opened.leaf, farewell));
                    }
                    // Only the member it names acts on it; the core decides.
                    Ok(GroupMessage::Dm(signal)) => {
                        out.signals.push(dm::HeardSignal { room: room.clone(), from: signer, signal })
                    }
                    // Votes count only inside a confirmation or an abort.
                    Ok(GroupMessage::Vote(_)) => out.warn(
                        &room,
                        format!("a vote of {signer} arrived as a chat message; ignored"),
                    ),
                    Err(_) => {
                        out.warn(&room, format!("{signer} sent a message this version cannot show"))
                    }
                }
            }
            Err(MlsError::EpochTooNew { .. }) => out.warn(
                &room,
                format!("a message claimed to be from {from} is from a key change this client has not seen; it was not shown"),
            ),
            Err(error) => {
                // A message of our group and epoch that we cannot read: someone holds other
                // keys for this epoch, so the room may have been split into two groups.
                let epoch = membership.group.epoch();
                let ours = crate::mls_header::peek_header(message).is_some_and(|header| {
                    header.group_id == membership.group.group_id() && header.epoch == epoch
                });
                out.warn(
                    &room,
                    format!("could not decrypt a message claimed to be from {from} ({error}); it was not shown"),
                );
                if ours && membership.split_warned != Some(epoch) {
                    membership.split_warned = Some(epoch);
                    out.events.push(Event::Room {
                        room,
                        notice: RoomNotice::MaySplit { from: from.to_owned() },
                    });
                }
            }
        }
    }

    /// Encrypts a chat payload for the room.
    pub fn encrypt(&mut self, payload: &ChatPayload) -> Result<ClientFrame, RoomError> {
        let name = self.name.clone();
        let number = self.sent_messages + 1;
        let membership = self.membership().ok_or(RoomError::NotMember)?;
        let envelope = GroupMessage::Chat(ChatEnvelope { number, payload: payload.clone() });
        let message = membership.group.encrypt_message(&proto::encode(&envelope))?;
        if message.len() > MAX_APPLICATION_LEN {
            return Err(RoomError::TooLong { len: message.len(), max: MAX_APPLICATION_LEN });
        }
        self.sent_messages = number;
        Ok(ClientFrame::Application { room: name, message })
    }
}

/// A chat message to show.
fn chat_event(room: &str, from: String, payload: ChatPayload, now: SystemTime, out: &mut Outbox) {
    let (text, action) = match payload {
        ChatPayload::Text(text) => (text, false),
        ChatPayload::Action(text) => (text, true),
    };
    out.events.push(Event::Message {
        room: room.to_owned(),
        from,
        text,
        action,
        time: now,
        late: false,
    });
}
