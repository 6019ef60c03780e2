"""Background worker bootstrap (RQ)."""
