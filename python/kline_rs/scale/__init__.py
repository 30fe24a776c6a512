"""Scale-out over NATS JetStream (issue 17): ``capture`` publishes trades to a replicated
stream. Imported only by ``kline-rs capture``; nothing here is on the replay path."""
