// mdfeed chart page: candles from the datafeed's /history, then live from /stream (SSE),
// and the lobby chat through the datafeed's /chat bridge.
//
// window.mdfeed exposes the page's state for tests and for a curious reader:
// barsLoaded (bars of the last /history load), liveBars (stream updates applied),
// chatMessages (messages shown), ready (history loaded and stream opened), error.

const ROOM = "lobby";
const HISTORY_BARS = 500;
const state = {
  barsLoaded: 0,
  liveBars: 0,
  lastBar: null,
  chatMessages: [],
  ready: false,
  error: null,
  symbol: null,
  resolution: null,
};
window.mdfeed = state;

const LABELS = { "1S": "1s", "1": "1m", "5": "5m", "15": "15m", "60": "1h", "1D": "1D" };
const $ = (id) => document.getElementById(id);
const fmt = (x) => (x == null ? "–" : x.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }));

// Text only (messages may carry server text); a `code` part is set in monospace.
function notice(text, code = "", after = "") {
  const el = $("notice");
  el.replaceChildren(text);
  if (code) {
    const c = document.createElement("code");
    c.textContent = code;
    el.append(c, after);
  }
  el.hidden = false;
}

function setStatus(text, cls) {
  const el = $("status");
  el.textContent = text;
  el.className = `status ${cls || ""}`;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${url}: HTTP ${response.status}, not JSON`);
  }
  if (!response.ok) throw new Error(body && body.errmsg ? body.errmsg : `${url}: HTTP ${response.status}`);
  return body;
}

// -- chart ----------------------------------------------------------------------------

let chart = null;
let candles = null;
let volumes = null;
let stream = null;
let firstClose = null;
let loads = 0; // a newer pick supersedes a load still waiting for /history
const seenSeqs = new Set();

function createChartOnce() {
  const LWC = window.LightweightCharts;
  if (!LWC) {
    notice("The chart library is missing on the server: run ", "npm ci --prefix web",
      " in the mdfeed checkout, then reload. Chat still works.");
    state.error = "chart library missing";
    return false;
  }
  chart = LWC.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#0f1419" }, textColor: "#c7d0d9", fontSize: 12 },
    grid: { vertLines: { color: "#1b222c" }, horzLines: { color: "#1b222c" } },
    rightPriceScale: { borderColor: "#242c37" },
    timeScale: { borderColor: "#242c37", timeVisible: true, secondsVisible: true },
    crosshair: { mode: LWC.CrosshairMode.Normal },
  });
  candles = chart.addSeries(LWC.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
    wickUpColor: "#26a69a", wickDownColor: "#ef5350",
  });
  volumes = chart.addSeries(LWC.HistogramSeries, {
    priceFormat: { type: "volume" }, priceScaleId: "", lastValueVisible: false, priceLineVisible: false,
  });
  volumes.priceScale().applyOptions({ scaleMargins: { top: 0.82, bottom: 0 } });
  chart.subscribeCrosshairMove((param) => {
    const bar = param && param.seriesData ? param.seriesData.get(candles) : null;
    showLegend(bar || state.lastBar);
  });
  return true;
}

function showLegend(bar) {
  const el = $("legend");
  const name = document.createElement("b");
  name.textContent = state.symbol || "";
  el.replaceChildren(name, ` · ${LABELS[state.resolution] || state.resolution || ""}`);
  if (!bar) return;
  for (const [label, value] of [["O", bar.open], ["H", bar.high], ["L", bar.low], ["C", bar.close]]) {
    const b = document.createElement("b");
    b.textContent = fmt(value);
    el.append(`  ${label} `, b);
  }
}

function showQuote(bar) {
  $("last").textContent = fmt(bar ? bar.close : null);
  const change = $("change");
  if (!bar || firstClose == null || firstClose === 0) {
    change.textContent = "";
    return;
  }
  const pct = ((bar.close - firstClose) / firstClose) * 100;
  change.textContent = `${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%`;
  change.className = `change ${pct >= 0 ? "up" : "down"}`;
}

function volumePoint(bar) {
  return { time: bar.time, value: bar.volume, color: bar.close >= bar.open ? "#26a69a55" : "#ef535055" };
}

async function loadSeries(symbol, resolution) {
  const load = ++loads;
  state.symbol = symbol;
  state.resolution = resolution;
  state.ready = false;
  state.lastBar = null;
  firstClose = null;
  if (stream) stream.close();
  const url = new URL(window.location.href);
  url.searchParams.set("symbol", symbol);
  url.searchParams.set("resolution", resolution);
  window.history.replaceState(null, "", url);
  for (const b of $("resolutions").children) b.classList.toggle("active", b.dataset.res === resolution);

  const now = Number(await (await fetch("/time")).text());
  const query = new URLSearchParams({ symbol, resolution, from: "0", to: String(now + 1), countback: String(HISTORY_BARS) });
  const history = await getJSON(`/history?${query}`);
  if (load !== loads) return;
  const bars = [];
  if (history.s === "ok") {
    for (let i = 0; i < history.t.length; i++) {
      bars.push({ time: history.t[i], open: history.o[i], high: history.h[i], low: history.l[i], close: history.c[i], volume: history.v[i] });
    }
  }
  if (candles) {
    candles.setData(bars);
    volumes.setData(bars.map(volumePoint));
    chart.timeScale().fitContent();
  }
  state.barsLoaded = bars.length;
  state.lastBar = bars.length ? bars[bars.length - 1] : null;
  firstClose = bars.length ? bars[0].open : null;
  showQuote(state.lastBar);
  showLegend(state.lastBar);
  openStream(symbol, resolution);
  state.ready = true;
}

function openStream(symbol, resolution) {
  setStatus("connecting…");
  stream = new EventSource(`/stream?${new URLSearchParams({ symbol, resolution })}`);
  const mine = stream;
  stream.onopen = () => setStatus("live", "live");
  stream.onerror = () => setStatus("reconnecting…", "down");
  stream.addEventListener("bar", (event) => {
    if (mine !== stream) return;
    const bar = JSON.parse(event.data);
    // The chart cannot go back in time; the server never sends older bars on one
    // stream, but one started just before /history answered may still be behind it.
    if (state.lastBar && bar.time < state.lastBar.time) return;
    if (candles) {
      candles.update(bar);
      volumes.update(volumePoint(bar));
    }
    if (firstClose == null) firstClose = bar.open;
    state.lastBar = bar;
    state.liveBars += 1;
    showQuote(bar);
    showLegend(bar);
  });
}

async function setupPickers() {
  const config = await getJSON("/config");
  const found = await getJSON("/search?query=&limit=1000");
  const params = new URLSearchParams(window.location.search);
  const select = $("symbol");
  for (const item of found) {
    const option = document.createElement("option");
    option.value = item.symbol;
    option.textContent = item.symbol;
    select.append(option);
  }
  const symbol = params.get("symbol") && found.some((s) => s.symbol === params.get("symbol"))
    ? params.get("symbol") : (found[0] && found[0].symbol);
  const resolutions = config.supported_resolutions;
  let resolution = params.get("resolution");
  if (!resolutions.includes(resolution)) resolution = resolutions.includes("1") ? "1" : resolutions[0];
  const group = $("resolutions");
  for (const r of resolutions) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.res = r;
    button.textContent = LABELS[r] || r;
    button.addEventListener("click", () => run(loadSeries(state.symbol, r)));
    group.append(button);
  }
  if (!symbol) {
    notice("The datafeed has no symbols yet.");
    return;
  }
  select.value = symbol;
  select.addEventListener("change", () => run(loadSeries(select.value, state.resolution)));
  await loadSeries(symbol, resolution);
}

// -- chat -----------------------------------------------------------------------------

function author() {
  const input = $("author");
  return input.value.trim();
}

function addMessage(message) {
  if (seenSeqs.has(message.seq)) return;
  seenSeqs.add(message.seq);
  state.chatMessages.push(message);
  const li = document.createElement("li");
  li.dataset.seq = message.seq;
  if (message.author === author()) li.classList.add("mine");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.author;
  const text = document.createElement("span");
  text.className = "body";
  text.textContent = message.text;
  const when = document.createElement("span");
  when.className = "when";
  when.textContent = new Date(message.time_ms).toLocaleTimeString();
  li.append(who, text, when);
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function setupChat() {
  const input = $("author");
  input.value = localStorage.getItem("mdfeed.author") ||
    `guest-${Math.floor(Math.random() * 0xffff).toString(16).padStart(4, "0")}`;
  input.addEventListener("change", () => localStorage.setItem("mdfeed.author", author()));
  // The browser resumes after Last-Event-ID (the room seq) when it reconnects.
  const chat = new EventSource(`/chat/${ROOM}/stream`);
  chat.addEventListener("chat", (event) => addMessage(JSON.parse(event.data)));
  chat.onerror = () => {
    if (chat.readyState === EventSource.CLOSED) {
      const error = $("chat-error");
      error.textContent = "Chat is not available on this datafeed.";
      error.hidden = false;
    }
  };
  $("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = $("text");
    const error = $("chat-error");
    if (!field.value.trim()) return;
    try {
      await getJSON(`/chat/${ROOM}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ author: author(), text: field.value }),
      });
      field.value = "";
      error.hidden = true;
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
}

function run(promise) {
  promise.catch((err) => {
    state.error = String(err.message || err);
    notice(`Could not load the chart: ${state.error}`);
    setStatus("error", "down");
  });
}

createChartOnce();
setupChat();
run(setupPickers());
