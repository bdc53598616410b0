//! Persistence of SATP sessions: the session row, its messages in order
//! (each the signed envelope as it went over the wire), and the signed,
//! hash-chained recovery log. One implementation for both dialects.

use std::future::Future;

use crate::store::{AnyStore, PgStore, RowGet, SqliteStore, StoreError, to_i64, to_u64};

/// Which end of a session this gateway is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// G1: the originating gateway, which sends the requests.
    Client,
    /// G2: the receiving gateway, which answers them.
    Server,
}

impl Role {
    /// The name in the database.
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "client" => Some(Role::Client),
            "server" => Some(Role::Server),
            _ => None,
        }
    }
}

/// Where a session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStatus {
    /// Messages are still expected.
    Open,
    /// Transfer-complete was exchanged.
    Complete,
    /// A session-abort was exchanged.
    Aborted,
}

impl SessionStatus {
    /// The name in the database.
    pub fn name(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Complete => "complete",
            SessionStatus::Aborted => "aborted",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "open" => Some(SessionStatus::Open),
            "complete" => Some(SessionStatus::Complete),
            "aborted" => Some(SessionStatus::Aborted),
            _ => None,
        }
    }
}

/// A session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    /// `sessionId`.
    pub session_id: String,
    /// The transfer it serves (on this gateway).
    pub transfer_id: String,
    /// This gateway's end.
    pub role: Role,
    /// The peer's gateway id.
    pub peer: String,
    /// `transferContextId`.
    pub context_id: String,
    /// Where it stands.
    pub status: SessionStatus,
    /// Server only: the sender's lock on the source ledger, as asserted and
    /// verified (lock id, `0x` hex).
    pub source_lock_id: Option<String>,
    /// Created (ms).
    pub created_at_ms: u64,
}

/// One message of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its place in the session, from 0.
    pub seq: u64,
    /// Who sent it.
    pub sender: Role,
    /// The short message type (`lock-assert-msg`).
    pub message_type: String,
    /// The signed envelope, JSON.
    pub envelope: String,
    /// The message's hash (`hashPrevMessage` of the next one).
    pub hash: String,
    /// When it was written (ms).
    pub at_ms: u64,
}

/// One entry of the recovery log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    /// Its place in the session's log, from 0.
    pub seq: u64,
    /// The entry, canonical JSON.
    pub entry: String,
    /// SHA-256 of `entry`, hex.
    pub hash: String,
    /// Detached JWS over `entry` by this gateway's identity key.
    pub signature: String,
}

/// The SATP store contract.
pub trait SatpStore: Send + Sync {
    /// Inserts a session with its first messages; false when the session id
    /// exists already (nothing is written then).
    fn create_session(
        &self,
        session: &SessionRow,
        messages: &[StoredMessage],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// A session by id.
    fn session(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Option<SessionRow>, StoreError>> + Send;
    /// The session serving a transfer.
    fn session_of_transfer(
        &self,
        transfer_id: &str,
    ) -> impl Future<Output = Result<Option<SessionRow>, StoreError>> + Send;
    /// A session's messages in order.
    fn messages(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Vec<StoredMessage>, StoreError>> + Send;
    /// Appends messages (their `seq` must be the next ones) and sets the
    /// status (when given) and source lock (when given), in one transaction; false when another writer
    /// appended first (nothing is written then).
    fn append_messages(
        &self,
        session_id: &str,
        messages: &[StoredMessage],
        status: Option<SessionStatus>,
        source_lock_id: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Appends a log entry at `row.seq`; false when that place is taken.
    fn append_log(
        &self,
        session_id: &str,
        row: &LogRow,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The last entry of a session's log.
    fn last_log(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Option<LogRow>, StoreError>> + Send;
    /// A session's log in order.
    fn log(&self, session_id: &str)
    -> impl Future<Output = Result<Vec<LogRow>, StoreError>> + Send;
}

const SELECT_SESSION: &str = "SELECT session_id, transfer_id, role, peer, context_id, status, source_lock_id, created_at_ms FROM satp_sessions";

fn session_from_row(row: &impl RowGet, lock: Option<String>) -> Result<SessionRow, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("satp session {what}"));
    Ok(SessionRow {
        session_id: row.get_string("session_id")?,
        transfer_id: row.get_string("transfer_id")?,
        role: Role::from_name(&row.get_string("role")?).ok_or_else(|| bad("role"))?,
        peer: row.get_string("peer")?,
        context_id: row.get_string("context_id")?,
        status: SessionStatus::from_name(&row.get_string("status")?)
            .ok_or_else(|| bad("status"))?,
        source_lock_id: lock,
        created_at_ms: to_u64(row.get_i64("created_at_ms")?, "time")?,
    })
}

macro_rules! impl_satp_store {
    ($store:ident, $conn:ty, $row:ty) => {
        impl $store {
            async fn insert_messages(
                db: &mut $conn,
                session_id: &str,
                messages: &[StoredMessage],
            ) -> Result<bool, StoreError> {
                for m in messages {
                    let inserted = sqlx::query("INSERT INTO satp_messages (session_id, seq, sender, message_type, envelope, hash, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                        .bind(session_id)
                        .bind(to_i64(m.seq, "seq")?)
                        .bind(m.sender.name())
                        .bind(&m.message_type)
                        .bind(&m.envelope)
                        .bind(&m.hash)
                        .bind(to_i64(m.at_ms, "time")?)
                        .execute(&mut *db)
                        .await;
                    match inserted {
                        Ok(_) => {}
                        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(false),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(true)
            }

            fn session_row(row: &$row) -> Result<SessionRow, StoreError> {
                let lock: Option<String> = sqlx::Row::try_get(row, "source_lock_id")?;
                session_from_row(row, lock)
            }
        }

        impl SatpStore for $store {
            async fn create_session(&self, s: &SessionRow, messages: &[StoredMessage]) -> Result<bool, StoreError> {
                let mut db = self.pool().begin().await?;
                let inserted = sqlx::query("INSERT INTO satp_sessions (session_id, transfer_id, role, peer, context_id, status, source_lock_id, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(&s.session_id)
                    .bind(&s.transfer_id)
                    .bind(s.role.name())
                    .bind(&s.peer)
                    .bind(&s.context_id)
                    .bind(s.status.name())
                    .bind(s.source_lock_id.as_deref())
                    .bind(to_i64(s.created_at_ms, "time")?)
                    .execute(&mut *db)
                    .await;
                match inserted {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        db.rollback().await?;
                        return Ok(false);
                    }
                    Err(e) => return Err(e.into()),
                }
                if !Self::insert_messages(&mut db, &s.session_id, messages).await? {
                    db.rollback().await?;
                    return Ok(false);
                }
                db.commit().await?;
                Ok(true)
            }

            async fn session(&self, session_id: &str) -> Result<Option<SessionRow>, StoreError> {
                let row = sqlx::query(crate::store::const_format(SELECT_SESSION, " WHERE session_id = $1"))
                    .bind(session_id)
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| Self::session_row(&row)).transpose()
            }

            async fn session_of_transfer(&self, transfer_id: &str) -> Result<Option<SessionRow>, StoreError> {
                let row = sqlx::query(crate::store::const_format(SELECT_SESSION, " WHERE transfer_id = $1"))
                    .bind(transfer_id)
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| Self::session_row(&row)).transpose()
            }

            async fn messages(&self, session_id: &str) -> Result<Vec<StoredMessage>, StoreError> {
                let rows = sqlx::query("SELECT seq, sender, message_type, envelope, hash, at_ms FROM satp_messages WHERE session_id = $1 ORDER BY seq")
                    .bind(session_id)
                    .fetch_all(self.pool())
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(StoredMessage {
                            seq: to_u64(row.get_i64("seq")?, "seq")?,
                            sender: Role::from_name(&row.get_string("sender")?)
                                .ok_or_else(|| StoreError::Corrupt("satp message sender".into()))?,
                            message_type: row.get_string("message_type")?,
                            envelope: row.get_string("envelope")?,
                            hash: row.get_string("hash")?,
                            at_ms: to_u64(row.get_i64("at_ms")?, "time")?,
                        })
                    })
                    .collect()
            }

            async fn append_messages(&self, session_id: &str, messages: &[StoredMessage], status: Option<SessionStatus>, source_lock_id: Option<&str>) -> Result<bool, StoreError> {
                let mut db = self.pool().begin().await?;
                if !Self::insert_messages(&mut db, session_id, messages).await? {
                    db.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("UPDATE satp_sessions SET status = COALESCE($2, status), source_lock_id = COALESCE($3, source_lock_id) WHERE session_id = $1")
                    .bind(session_id)
                    .bind(status.map(SessionStatus::name))
                    .bind(source_lock_id)
                    .execute(&mut *db)
                    .await?;
                db.commit().await?;
                Ok(true)
            }

            async fn append_log(&self, session_id: &str, r: &LogRow) -> Result<bool, StoreError> {
                let inserted = sqlx::query("INSERT INTO satp_log (session_id, seq, entry, hash, signature) VALUES ($1, $2, $3, $4, $5)")
                    .bind(session_id)
                    .bind(to_i64(r.seq, "seq")?)
                    .bind(&r.entry)
                    .bind(&r.hash)
                    .bind(&r.signature)
                    .execute(self.pool())
                    .await;
                match inserted {
                    Ok(_) => Ok(true),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }

            async fn last_log(&self, session_id: &str) -> Result<Option<LogRow>, StoreError> {
                let row = sqlx::query("SELECT seq, entry, hash, signature FROM satp_log WHERE session_id = $1 ORDER BY seq DESC LIMIT 1")
                    .bind(session_id)
                    .fetch_optional(self.pool())
                    .await?;
                row.map(|row| {
                    Ok(LogRow {
                        seq: to_u64(row.get_i64("seq")?, "seq")?,
                        entry: row.get_string("entry")?,
                        hash: row.get_string("hash")?,
                        signature: row.get_string("signature")?,
                    })
                })
                .transpose()
            }

            async fn log(&self, session_id: &str) -> Result<Vec<LogRow>, StoreError> {
                let rows = sqlx::query("SELECT seq, entry, hash, signature FROM satp_log WHERE session_id = $1 ORDER BY seq")
                    .bind(session_id)
                    .fetch_all(self.pool())
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(LogRow {
                            seq: to_u64(row.get_i64("seq")?, "seq")?,
                            entry: row.get_string("entry")?,
                            hash: row.get_string("hash")?,
                            signature: row.get_string("signature")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

impl_satp_store!(PgStore, sqlx::PgConnection, sqlx::postgres::PgRow);
impl_satp_store!(SqliteStore, sqlx::SqliteConnection, sqlx::sqlite::SqliteRow);

use crate::store::delegate;

impl SatpStore for AnyStore {
    async fn create_session(
        &self,
        session: &SessionRow,
        messages: &[StoredMessage],
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.create_session(session, messages))
    }
    async fn session(&self, session_id: &str) -> Result<Option<SessionRow>, StoreError> {
        delegate!(self, s => s.session(session_id))
    }
    async fn session_of_transfer(
        &self,
        transfer_id: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        delegate!(self, s => s.session_of_transfer(transfer_id))
    }
    async fn messages(&self, session_id: &str) -> Result<Vec<StoredMessage>, StoreError> {
        delegate!(self, s => s.messages(session_id))
    }
    async fn append_messages(
        &self,
        session_id: &str,
        messages: &[StoredMessage],
        status: Option<SessionStatus>,
        source_lock_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        delegate!(self, s => s.append_messages(session_id, messages, status, source_lock_id))
    }
    async fn append_log(&self, session_id: &str, row: &LogRow) -> Result<bool, StoreError> {
        delegate!(self, s => s.append_log(session_id, row))
    }
    async fn last_log(&self, session_id: &str) -> Result<Option<LogRow>, StoreError> {
        delegate!(self, s => s.last_log(session_id))
    }
    async fn log(&self, session_id: &str) -> Result<Vec<LogRow>, StoreError> {
        delegate!(self, s => s.log(session_id))
    }
}
