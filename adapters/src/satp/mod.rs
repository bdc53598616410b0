//! Building blocks of SATP (draft-ietf-satp-core) on its JSON wire format:
//! [`jcs`] (RFC 8785 canonical JSON, the form every hash and signature is
//! computed over) and [`jws`] (RFC 7515 JSON Web Signatures with ES256, the
//! algorithm the draft makes mandatory). The messages and the session state
//! machine build on these (issue #4).

pub mod jcs;
pub mod jws;
