"""3d on the wrong grid is never silent: every entry point that takes intervals warns when 3d
is asked for without the symbol's anchor (issue 12, section 5)."""

from __future__ import annotations

import warnings

import kline_rs
import numpy as np
import pytest

T0 = 1_577_836_800_000  # 2020-01-01
BTC_ANCHOR = 1_502_928_000_000  # 2017-08-17, BTCUSDT's first 1d kline


def trades() -> dict[str, np.ndarray]:
    one = np.array([1, 2], dtype=np.int64)
    return {
        "agg_id": one,
        "price": one * 10**8,
        "qty": one,
        "first_id": one,
        "last_id": one,
        "time": np.array([T0, T0 + 86_400_000], dtype=np.int64),
        "buyer_is_maker": one == 1,
    }


def test_aggregate_warns_for_3d_without_an_anchor_and_not_with_one() -> None:
    with pytest.warns(kline_rs.Anchor3dWarning, match="listing day"):
        kline_rs.aggregate(**trades(), intervals=["1d", "3d"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kline_rs.aggregate(**trades(), intervals=["1d", "3d"], anchor_3d_ms=BTC_ANCHOR)
        kline_rs.aggregate(**trades(), intervals=["1d"])


def test_rollup_csv_warns_for_3d_without_an_anchor() -> None:
    day = f"{T0},1.0,1.0,1.0,1.0,1.0,{T0 + 86_399_999},1.0,1,0.0,0.0,0"
    with pytest.warns(kline_rs.Anchor3dWarning):
        kline_rs.rollup_csv([day], "3d")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kline_rs.rollup_csv([day], "3d", anchor_3d_ms=BTC_ANCHOR)


def test_the_engine_warns_for_each_symbol_added_without_an_anchor() -> None:
    with kline_rs.Engine(["1d", "3d"], partitions=1) as engine:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            engine.add_symbol("BTCUSDT", anchor_3d_ms=BTC_ANCHOR)
        with pytest.warns(kline_rs.Anchor3dWarning):
            engine.add_symbol("ETHUSDT")
        with pytest.warns(kline_rs.Anchor3dWarning):
            engine.add_symbols(["SOLUSDT"])
    with pytest.warns(kline_rs.Anchor3dWarning):
        kline_rs.Engine(["3d"], partitions=1, auto_add=True).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with kline_rs.Engine(["1m", "1d"], partitions=1) as plain:
            plain.add_symbols(["BTCUSDT"])
