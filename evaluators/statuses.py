"""How an evaluated program can end: the one list the sandbox, the store, and every view read.

Its own module (plain tuples, no imports) so that the database schema, the sandbox's reply check and the views
cannot disagree on it.
"""

# "culled": stopped by a cascade stage (its score on the cheap inputs missed the threshold), never fully scored.
# "duplicate": the same code, or the same outputs on the first inputs, as an earlier program (`duplicate_of`).
STATUSES = ("ok", "invalid", "error", "timeout", "memory", "crashed", "culled", "duplicate")
# What the store records for one evaluation: a duplicate is recorded as a program pointing at its original, with
# no evaluation of its own.
EVALUATION_STATUSES = tuple(status for status in STATUSES if status != "duplicate")

# Which inputs' outputs fingerprint a candidate for "duplicate": the first ones (cheap: a twin stops there), or every
# input (a twin then scores exactly as its original). Here, with no imports, so the settings can name the choices
# without loading the sandbox and numpy.
BEHAVIOUR_INPUTS = ("first", "all")
DEFAULT_BEHAVIOUR_INPUTS = "first"  # benchmarks/QUALITY.md, "False twins"
