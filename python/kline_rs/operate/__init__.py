"""Running ``kline-rs run`` as a service: a config file, logs, Prometheus metrics and health."""
