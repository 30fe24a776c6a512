// The kline_rs chart page: history from /krs/v1/klines, live from /ws/<symbol>@kline_<interval>,
// drawn with plotly.js (served from the installed plotly package, see __init__.py).
//
// window.klineChart tells what the page drew (tests read it):
//   symbol, interval  what is shown
//   candles           klines drawn (gap ones included)
//   lastOpenTime      open time (ms) of the last drawn kline
//   lastClose         its close as a number; lastCloseText: as the server sent it
//   gaps              drawn klines marked gap (closed while the feed was down)
//   gapOpenTimes      their open times (ms)
//   revisions         drawn klines with revision > 0 (a repaired gap sent again)
//   updates           websocket kline events applied
//   draws             times the chart was drawn
//   live              the websocket is open
//   ready             history loaded and drawn once
//   error             what went wrong (null when nothing)
// window.klineRowToCandle(row) maps one /krs/v1/klines row as the page does.
"use strict";

(function () {
  const SYMBOL_RE = /^[A-Za-z0-9_]{1,32}$/;
  const INTERVAL_RE = /^[0-9]{1,6}[smhdwM]$/;
  const MAX_CANDLES = 5000; // the oldest are dropped past it
  const REST_LIMIT = 1000; // Binance's largest page
  const RECONNECT_MS = [1000, 2000, 5000, 10000, 30000];
  const COLORS = { up: "#26a69a", down: "#ef5350", gap: "#ff9800", gapFill: "#ffe0b2" };

  const params = new URLSearchParams(window.location.search);
  const symbol = (params.get("symbol") || "BTCUSDT").toUpperCase();
  const interval = params.get("interval") || "1m";
  const limit = Math.min(REST_LIMIT, Math.max(1, Number(params.get("limit")) || 500));

  const state = {
    symbol, interval, candles: 0, lastOpenTime: null, lastClose: null, lastCloseText: null,
    gaps: 0, gapOpenTimes: [], revisions: 0, updates: 0, draws: 0, live: false, ready: false, error: null,
  };
  window.klineChart = state;
  window.klineRowToCandle = (row) => rowToCandle(row); // to check the row shapes it takes

  // Candles oldest first, one per open time: {t, o, h, l, c, v (decimal text), gap, revision,
  // closed}. Numbers are only for drawing; the text is what the server sent.
  let candles = [];

  // One /krs/v1/klines row as a candle, or null. Takes our extension's objects (Binance's
  // field names, camelCase or snake_case, or the websocket's letters, plus gap/revision/closed)
  // and Binance's 12-field arrays. The one place that knows the row shape. Not known to be
  // closed means open: a later event for it is then never refused.
  function rowToCandle(row) {
    if (Array.isArray(row)) {
      return candle(row[0], row[1], row[2], row[3], row[4], row[5], false, 0, false);
    }
    if (row === null || typeof row !== "object") return null;
    const pick = (...names) => names.map((n) => row[n]).find((v) => v !== undefined && v !== null);
    return candle(
      pick("openTime", "open_time", "t"),
      pick("open", "o"), pick("high", "h"), pick("low", "l"), pick("close", "c"),
      pick("volume", "v"),
      pick("gap") === true,
      Number(pick("revision") || 0),
      pick("closed", "x") === true,
    );
  }

  // A websocket kline event's k as a candle (its gap mark comes later, over REST).
  function eventToCandle(k) {
    return candle(k.t, k.o, k.h, k.l, k.c, k.v, false, 0, k.x === true);
  }

  function candle(t, o, h, l, c, v, gap, revision, closed) {
    const out = { t: Number(t), o: String(o), h: String(h), l: String(l), c: String(c),
                  v: String(v), gap, revision, closed };
    const ok = Number.isSafeInteger(out.t) && [out.o, out.h, out.l, out.c, out.v]
      .every((s) => s !== "" && Number.isFinite(Number(s)));
    return ok ? out : null;
  }

  function indexOf(t) {
    let lo = 0;
    let hi = candles.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (candles[mid].t === t) return mid;
      if (candles[mid].t < t) lo = mid + 1;
      else hi = mid - 1;
    }
    return -lo - 1; // where it would go, encoded
  }

  // A candle from REST into the list: new ones inserted in order, known ones replaced (a closed
  // kline never goes back to open).
  function mergeRow(c) {
    const i = indexOf(c.t);
    if (i >= 0) {
      if (!(candles[i].closed && !c.closed)) candles[i] = c;
    } else {
      candles.splice(-i - 1, 0, c);
    }
  }

  // A websocket event: the last candle updated when its open time matches, a new one appended,
  // an older one replaced (a closed kline sent again: a revision).
  function applyEvent(c) {
    const last = candles[candles.length - 1];
    if (last === undefined || c.t > last.t) {
      if (last !== undefined && !last.closed) marksDue(last.t); // its close may have been missed
      candles.push(c);
    } else {
      const i = indexOf(c.t);
      if (i < 0) return;
      const old = candles[i];
      if (old.closed && !c.closed) return;
      c.gap = old.gap;
      c.revision = old.revision;
      candles[i] = c;
    }
    if (c.closed) marksDue(c.t); // the gap mark and revision are only in REST rows
    state.updates += 1;
    trim();
    drawSoon();
  }

  function trim() {
    if (candles.length > MAX_CANDLES) candles = candles.slice(candles.length - MAX_CANDLES);
  }

  function klinesUrl(startTime, n) {
    const q = new URLSearchParams({ symbol, interval, limit: String(n) });
    if (startTime !== null) q.set("startTime", String(startTime));
    return `/krs/v1/klines?${q}`;
  }

  async function fetchRows(startTime, n) {
    const response = await fetch(klinesUrl(startTime, n), { cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const msg = body && body.msg ? body.msg : `HTTP ${response.status}`;
      throw new Error(`/krs/v1/klines: ${msg}`);
    }
    const rows = Array.isArray(body) ? body : body && (body.klines || body.data);
    if (!Array.isArray(rows)) throw new Error("/krs/v1/klines: not a list of klines");
    const out = [];
    for (const row of rows) {
      const c = rowToCandle(row);
      if (c === null) console.warn("kline_rs chart: row skipped", row);
      else out.push(c);
    }
    return out;
  }

  // Closed klines whose gap mark and revision are to be read again over REST, from the oldest.
  let marksFrom = null;
  let marksTimer = null;

  function marksDue(t) {
    marksFrom = marksFrom === null ? t : Math.min(marksFrom, t);
    if (marksTimer === null) marksTimer = setTimeout(refreshMarks, 250);
  }

  async function refreshMarks() {
    const from = marksFrom;
    marksFrom = null;
    marksTimer = null;
    if (from === null) return;
    try {
      for (const c of await fetchRows(from, REST_LIMIT)) mergeRow(c);
      trim();
      drawSoon();
    } catch (e) {
      fail(e);
    }
  }

  let drawTimer = null;

  function drawSoon() {
    if (drawTimer === null) drawTimer = setTimeout(draw, 50);
  }

  function draw() {
    drawTimer = null;
    const shown = candles.slice();
    const normal = shown.filter((c) => !c.gap);
    const gaps = shown.filter((c) => c.gap);
    const x = (cs) => cs.map((c) => new Date(c.t));
    const col = (cs, f) => cs.map((c) => Number(c[f]));
    const ohlc = (cs) => ({ x: x(cs), open: col(cs, "o"), high: col(cs, "h"),
                            low: col(cs, "l"), close: col(cs, "c") });
    const traces = [
      { type: "candlestick", name: `${symbol} ${interval}`, ...ohlc(normal),
        increasing: { line: { color: COLORS.up }, fillcolor: COLORS.up },
        decreasing: { line: { color: COLORS.down }, fillcolor: COLORS.down } },
      { type: "candlestick", name: "gap (feed was down)", legendgroup: "gap", ...ohlc(gaps),
        increasing: { line: { color: COLORS.gap }, fillcolor: COLORS.gapFill },
        decreasing: { line: { color: COLORS.gap }, fillcolor: COLORS.gapFill } },
      { type: "scatter", mode: "markers", name: "gap", legendgroup: "gap", showlegend: false,
        x: x(gaps), y: col(gaps, "h"), hovertext: "gap: the feed was down", hoverinfo: "text+x",
        marker: { symbol: "triangle-down", size: 10, color: COLORS.gap } },
      { type: "bar", name: "volume", yaxis: "y2", x: x(shown), y: col(shown, "v"),
        marker: { color: shown.map((c) => (c.gap ? COLORS.gap
          : Number(c.c) >= Number(c.o) ? COLORS.up : COLORS.down)), opacity: 0.6 } },
    ];
    const layout = {
      uirevision: `${symbol} ${interval}`,
      margin: { l: 70, r: 20, t: 10, b: 40 },
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom" },
      xaxis: { type: "date", rangeslider: { visible: false }, anchor: "y2" },
      yaxis: { domain: [0.3, 1], title: { text: "price" } },
      yaxis2: { domain: [0, 0.24], title: { text: "volume" } },
      bargap: 0.15,
    };
    window.Plotly.react("chart", traces, layout, { responsive: true, displaylogo: false })
      .then(() => drawn(shown))
      .catch(fail);
  }

  function drawn(shown) {
    const last = shown[shown.length - 1];
    state.candles = shown.length;
    state.lastOpenTime = last ? last.t : null;
    state.lastClose = last ? Number(last.c) : null;
    state.lastCloseText = last ? last.c : null;
    state.gapOpenTimes = shown.filter((c) => c.gap).map((c) => c.t);
    state.gaps = state.gapOpenTimes.length;
    state.revisions = shown.filter((c) => c.revision > 0).length;
    state.draws += 1;
    state.ready = true;
    status();
  }

  let socket = null;
  let retries = 0;

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const stream = `${symbol.toLowerCase()}@kline_${interval}`;
    socket = new WebSocket(`${scheme}//${window.location.host}/ws/${stream}`);
    socket.onopen = () => {
      state.live = true;
      if (retries > 0 && candles.length > 0) marksDue(candles[candles.length - 1].t);
      retries = 0;
      status();
    };
    socket.onmessage = (msg) => {
      let event;
      try {
        event = JSON.parse(msg.data);
      } catch (e) {
        return;
      }
      if (event && event.data) event = event.data; // the combined form
      if (!event || event.e !== "kline" || !event.k) return;
      const c = eventToCandle(event.k);
      if (c !== null) applyEvent(c);
    };
    socket.onclose = () => {
      state.live = false;
      status();
      const wait = RECONNECT_MS[Math.min(retries, RECONNECT_MS.length - 1)];
      retries += 1;
      setTimeout(connect, wait);
    };
  }

  function status() {
    const el = document.getElementById("status");
    if (state.error !== null) {
      el.textContent = state.error;
      el.className = "error";
      return;
    }
    const gaps = state.gaps ? `, ${state.gaps} gap` : "";
    const live = state.live ? "live" : "connecting…";
    el.textContent = `${symbol} ${interval}: ${state.candles} klines${gaps} · ${live}`;
    el.className = "";
  }

  function fail(e) {
    state.error = String(e && e.message ? e.message : e);
    console.error("kline_rs chart:", e);
    status();
  }

  async function start() {
    document.getElementById("symbol").value = symbol;
    document.getElementById("interval").value = interval;
    if (!SYMBOL_RE.test(symbol) || !INTERVAL_RE.test(interval)) {
      fail(new Error(`not a symbol and interval: ${symbol} ${interval}`));
      return;
    }
    if (window.Plotly === undefined) {
      fail(new Error("plotly.js did not load (/static/plotly.min.js)"));
      return;
    }
    try {
      candles = await fetchRows(null, limit);
    } catch (e) {
      fail(e);
      return;
    }
    draw();
    connect();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
