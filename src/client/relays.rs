//! Several relays for one client (`chatter HOST1,HOST2`, or `servers = [...]` in the
//! configuration): relays that share rooms (`relay::cluster`) each serve the same session,
//! so when the link to one is lost, the client tries the next, in turn.
//!
//! A list of one is a relay of its own, and behaves as it always did. The list is written
//! as one string, comma-separated, wherever a server address goes.

/// The relays a client may use, and the one it tries next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relays {
    addresses: Vec<String>,
    next: usize,
}

impl Relays {
    /// `HOST:PORT[,HOST:PORT…]`, as normalized by the command line.
    pub fn parse(list: &str) -> Relays {
        let addresses: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|address| !address.is_empty())
            .map(str::to_owned)
            .collect();
        let addresses = if addresses.is_empty() { vec![list.to_owned()] } else { addresses };
        Relays { addresses, next: 0 }
    }

    /// The relay to try now; the one after it is tried next time. After a link to one relay
    /// is lost, the first try goes to the next: the lost one may be down.
    pub fn take_turn(&mut self) -> &str {
        let index = self.next % self.addresses.len();
        self.next = (index + 1) % self.addresses.len();
        &self.addresses[index]
    }

    /// The relay at `index` answered: the next try (after a lost link) goes to the one after.
    pub fn connected_to(&mut self, index: usize) {
        self.next = (index + 1) % self.addresses.len();
    }

    pub fn addresses(&self) -> &[String] {
        &self.addresses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_tries_the_relay_after_the_one_it_lost_then_each_in_turn() {
        let mut relays = Relays::parse("a:1, b:2,c:3");
        assert_eq!(relays.addresses(), ["a:1", "b:2", "c:3"]);
        relays.connected_to(0);
        assert_eq!(relays.take_turn(), "b:2");
        assert_eq!(relays.take_turn(), "c:3");
        assert_eq!(relays.take_turn(), "a:1");
        let mut one = Relays::parse("a:1");
        one.connected_to(0);
        assert_eq!(one.take_turn(), "a:1");
        assert_eq!(one.take_turn(), "a:1");
    }
}
