"""The store: all SQL and transactions. Functions take a cursor; callers own the transaction."""
