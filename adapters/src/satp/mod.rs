//! Building blocks of SATP (draft-ietf-satp-core) on its JSON wire format:
//! [`jcs`] (RFC 8785 canonical JSON, the form every hash and signature is
//! computed over) and [`jws`] (RFC 7515 JSON Web Signatures with ES256, the
//! algorithm the draft makes mandatory); [`messages`] (the stage 1-3
//! messages of draft-ietf-satp-core-17 with their URNs and fields),
//! [`envelope`] (how a message travels signed) and [`session`] (the order
//! and hash chain of a session, with the draft's error codes). [`context`] carries the HTLC terms in
//! `transferContextId`. The gateway drives sessions over HTTP.

pub mod context;
pub mod envelope;
pub mod jcs;
pub mod jws;
pub mod messages;
pub mod recovery;
pub mod session;
