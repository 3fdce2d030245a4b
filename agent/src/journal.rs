//! The event journal: a durable history of what happened, in SQLite.
