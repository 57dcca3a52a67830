//! Joining a room: the password exchange with its leader, the Welcome, and (as leader)
//! the joiners we admit.

use super::*;

impl Room {
    /// The relay says the room was empty: we create its group, of `suite`, and lead it.
    pub fn created(
        &mut self,
        mls: &MlsMember,
        suite: RoomSuite,
        out: &mut Outbox,
    ) -> Result<(), RoomError> {
        if !matches!(self.phase, Phase::Requested { .. }) {
            return Err(RoomError::OutOfTurn("a new room"));
        }
        // Nobody leads but us: our half of a password exchange goes nowhere.
        self.sent_admission = None;
        let group = mls.create_room_of(suite)?;
        if let Phase::Requested { departed: Some(_) } = &self.phase {
            out.notice(
                &self.name,
                "everyone else had left: you started the room afresh, as a new group".into(),
            );
        }
        self.phase = Phase::Member(Membership::new(group));
        self.relay_members = vec![mls.nick().to_owned()];
        Ok(())
    }

    /// A `Join`, carrying the first message of a new password exchange (kept until the
    /// relay answers): a joiner does not wait to learn who leads before starting it.
    pub fn join_frame(&mut self) -> ClientFrame {
        let (admission, pake_message) = JoinerAdmission::start(
            &self.name,
            &self.joiner_nick,
            self.password.expose().as_bytes(),
        );
        self.sent_admission = Some(Box::new(admission));
        ClientFrame::Join { room: self.name.clone(), pake_message }
    }

    /// The relay says the room exists and passed our half of the password exchange to
    /// `leader`: wait for its answer.
    pub fn admission_pending(&mut self, leader: String) -> Result<(), RoomError> {
        // A reclaim is never answered by a password exchange: only the user's own `/join`
        // starts one (a relay that could start them could guess the password online).
        let Phase::Requested { departed } = &mut self.phase else {
            return Err(RoomError::OutOfTurn("a join answer"));
        };
        let Some(admission) = self.sent_admission.take() else {
            return Err(RoomError::OutOfTurn("a join answer"));
        };
        let departed = departed.take();
        self.phase = Phase::Admitting { leader, admission, departed };
        Ok(())
    }

    /// The leader answered: finish the exchange and send our sealed KeyPackage, made for the
    /// room's ciphersuite `suite` (its number, as the leader named it). A suite this client
    /// cannot use ends the join here, with the suite named, before any KeyPackage exists.
    pub fn admission_reply(
        &mut self,
        mls: &MlsMember,
        pake_message: &[u8],
        suite: u16,
    ) -> Result<ClientFrame, RoomError> {
        let Phase::Admitting { .. } = self.phase else {
            return Err(RoomError::OutOfTurn("an admission reply"));
        };
        let Phase::Admitting { leader, admission, departed } =
            std::mem::replace(&mut self.phase, Phase::Requested { departed: None })
        else {
            return Err(RoomError::OutOfTurn("an admission reply"));
        };
        let suite = RoomSuite::from_id(suite).map_err(MlsError::from)?;
        let key_package = mls.key_package_for_attempt(suite)?;
        let finish = admission.finish(&leader, pake_message, &key_package.bytes)?;
        self.phase = Phase::AwaitingWelcome { leader, departed, _attempt_keys: key_package };
        Ok(ClientFrame::AdmissionFinish {
            room: self.name.clone(),
            confirmation: finish.confirmation.to_vec(),
            sealed_key_package: finish.sealed_key_package,
        })
    }

    /// The leader changed before admitting us: start over, remembering what we remembered.
    pub fn restart_join(&mut self) -> ClientFrame {
        if self.freshly_founded() {
            // Nothing to come back to: we only founded it.
            self.phase = Phase::Requested { departed: None };
        }
        let departed = match std::mem::replace(&mut self.phase, Phase::Requested { departed: None })
        {
            Phase::Requested { departed }
            | Phase::Admitting { departed, .. }
            | Phase::AwaitingWelcome { departed, .. } => departed,
            Phase::Member(membership) | Phase::Reclaiming(membership) => {
                Some(departed_from(&membership.group))
            }
            Phase::Gone => None,
        };
        self.phase = Phase::Requested { departed };
        self.join_frame()
    }

    /// A Welcome arrived. Accepted only after our own password exchange, and, when we are
    /// coming back, only into the group we were taken out of with the members we knew.
    pub fn welcomed(
        &mut self,
        mls: &MlsMember,
        welcome: &[u8],
        members: Vec<String>,
    ) -> Result<Welcomed, RoomError> {
        let Phase::AwaitingWelcome { departed, leader, .. } = &self.phase else {
            return Err(RoomError::OutOfTurn("a welcome"));
        };
        let group = mls.join_room(welcome)?;
        let group_members = group.members();
        commit_policy::look_alikes(&group_members).map_err(RoomError::UnsafeGroup)?;
        if !group_members.iter().any(|member| member.nick == *leader) {
            return Err(RoomError::WithoutLeader(leader.clone()));
        }
        let outcome = match departed {
            Some(departed) => Welcomed::Rejoined {
                newcomers: rejoin::check(departed, &group.group_id(), &group_members)?,
            },
            None => Welcomed::Joined,
        };
        self.relay_members = members;
        self.phase = Phase::Member(Membership::new(group));
        // A new leaf: our messages are numbered from 1 again, as members who saw us join
        // expect (`SenderGaps::joined`).
        self.sent_messages = 0;
        Ok(outcome)
    }

    /// As leader: a joiner opened the password exchange.
    pub fn admission_request(
        &mut self,
        me: &str,
        joiner: String,
        attempt: u64,
        pake: &[u8],
        out: &mut Outbox,
    ) {
        let name = self.name.clone();
        let is_leader = self.is_leader(me);
        let password = self.password.clone();
        let Some(membership) = self.membership().filter(|_| is_leader) else { return };
        // A full room is refused before the password exchange: nobody could be added anyway.
        if membership.group.members().len() >= membership.group.max_members() {
            let reason = AdmissionRefusal::RoomFull;
            out.frames.push(ClientFrame::AdmissionRefused { room: name, joiner, attempt, reason });
            return;
        }
        let suite = membership.group.suite().id();
        match LeaderAdmission::respond(&name, &joiner, me, password.expose().as_bytes(), pake) {
            Ok((admission, pake_message)) => {
                membership.admissions.insert(joiner.clone(), (attempt, admission));
                out.frames.push(ClientFrame::AdmissionReply {
                    room: name,
                    joiner,
                    attempt,
                    pake_message,
                    suite,
                });
            }
            Err(_) => out.frames.push(ClientFrame::AdmissionRefused {
                room: name,
                joiner,
                attempt,
                reason: AdmissionRefusal::Malformed,
            }),
        }
    }

    /// As leader: the joiner proved (or failed to prove) the password and sent its
    /// KeyPackage.
    pub fn admission_finish(
        &mut self,
        me: &str,
        joiner: String,
        attempt: u64,
        confirmation: &[u8],
        sealed_key_package: &[u8],
        out: &mut Outbox,
    ) {
        let name = self.name.clone();
        let refuse = |out: &mut Outbox, joiner: String, reason| {
            let room = name.clone();
            out.frames.push(ClientFrame::AdmissionRefused { room, joiner, attempt, reason });
        };
        // An exchange for another attempt (the joiner gave up and started again) is not this
        // one's: its keys would only make the password look wrong.
        let Some((_, admission)) = self
            .membership()
            .and_then(|membership| membership.admissions.remove(&joiner))
            .filter(|(started, _)| *started == attempt)
        else {
            return refuse(out, joiner, AdmissionRefusal::LeaderChanged);
        };
        match admission.verify(confirmation, sealed_key_package) {
            Ok(key_package) => {
                // It proved the password to us just now as a joiner, so the relay does not
                // have it in the room, whatever an older notice said (a replayed
                // `MemberJoined` of this epoch): its old leaf goes in the commit that adds
                // it again. (A replayed admission frame cannot get this far: the exchange
                // is fresh each time.)
                self.relay_members.retain(|member| *member != joiner);
                if let Some(membership) = self.membership() {
                    membership.intents.push_back(Intent::Add { joiner, attempt, key_package });
                }
                self.drive_commits(me, out);
            }
            Err(AdmissionError::WrongPassword) => {
                out.notice(&name, format!("{joiner} gave a wrong room password"));
                refuse(out, joiner, AdmissionRefusal::WrongPassword);
            }
            Err(_) => refuse(out, joiner, AdmissionRefusal::Malformed),
        }
    }
}

/// What we remember of a group we are leaving, to check the one we come back into.
pub(super) fn departed_from(group: &RoomGroup) -> Departed {
    Departed {
        group_id: group.group_id(),
        members: group.members().into_iter().filter(|member| !member.is_self).collect(),
    }
}
