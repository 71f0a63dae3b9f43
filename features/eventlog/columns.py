"""The canonical event schema: column names and the log's unit of time, named once."""

CUSTOMER_ID = "customer_id"
TIMESTAMP = "timestamp"
EVENT = "event"
CASE_ID = "case_id"
CHANNEL = "channel"
VALUE = "value"
SCORE = "score"

REQUIRED_COLUMNS = (CUSTOMER_ID, TIMESTAMP, EVENT)
NS_PER_HOUR = 3_600 * 10**9  # event times are int64 nanoseconds since the epoch, UTC
NS_PER_DAY = 24 * NS_PER_HOUR
OPTIONAL_TEXT_COLUMNS = (CASE_ID, CHANNEL)
OPTIONAL_NUMBER_COLUMNS = (VALUE, SCORE)
# The largest magnitude a number column may hold: beyond it a float64 no longer holds cents
# exactly, and below it a billion values still sum far from overflow (no total prints inf).
NUMBER_LIMIT = 1e15
CANONICAL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_TEXT_COLUMNS + OPTIONAL_NUMBER_COLUMNS

TIME_DTYPE = "datetime64[ns, UTC]"
