"""Scale-out over NATS JetStream: ``capture`` publishes trades to a replicated stream,
``aggregate`` makes klines of them. Nothing here is on the replay path.

The defaults below are the commands' and the modules' both: here, the CLI reads them without
importing NATS."""

#: Past this size the trade stream refuses new trades (discard new): capture stops, saying
#: so, rather than have JetStream drop trades nobody has aggregated yet. Each server reserves
#: it at creation (``kline-rs capture --max-bytes`` for a smaller disk).
TRADES_MAX_BYTES = 64 * 2**30
#: Size bound of the klines stream (each server reserves it; ``--klines-max-bytes``); past it
#: the oldest klines leave (consumers read the store for those).
KLINES_MAX_BYTES = 16 * 2**30
#: Seconds a lease lasts without renewal (the bucket's TTL, when this process creates it).
LEASE_TTL_S = 10.0
#: Grace (ms) past a kline's close before the stream's clock closes it: covers how far one
#: trade may reach the stream behind trades made after it (a capture publish retried through
#: a NATS leader election: seconds). A trade later than that amends its kline if it is the
#: latest closed one, else it is counted (``late``) and logged.
GRACE_MS = 5_000
#: A shard with nothing to read this long moves its clock to the wall clock less this much.
QUIET_CLOSE_S = 10.0
