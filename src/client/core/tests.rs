//! The client core without sockets: frames, requests, link events and time are fed by
//! hand, and what comes out is read back.
