"""Input values the hostile-input tests (API and pages) send on PostgreSQL."""

# What PostgreSQL takes differently from SQLite (a NUL, an integer beyond 64 bits, LIKE's
# wildcard, a negative id, multibyte text); the rest is engine-blind and runs on SQLite.
POSTGRESQL_GARBAGE = ["-1", "99999999999999999999999", "\x00", "☃" * 300, "%"]
