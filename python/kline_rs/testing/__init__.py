"""Test infrastructure shipped for users' own tests: a throwaway PostgreSQL cluster
(:mod:`kline_rs.testing.postgres`). The fake exchange and market simulator are
:mod:`kline_rs.fake`."""
