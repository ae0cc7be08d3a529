/* Live view of one channel: show every message exactly once, and send.
 *
 * The connection (WebSocket with server-sent events as the fallback,
 * resuming from the last position after every drop) is tornado-channels.js;
 * this module only draws it. On the page's URL: ?transport=sse forces
 * server-sent events; ?token=<jwt> is the channel token to connect (and
 * publish) with; ?token_url=<same-origin URL> is where a fresh token is
 * fetched before each connection (the answer's text, or its JSON "token"),
 * so a page whose token expires (closed with 4001) renews it and resumes.
 */
import { connect } from "./tornado-channels.js";

const MAX_MESSAGES = 500;
const HEX_BYTES = 32;

const statusEl = document.getElementById("status");
const listEl = document.getElementById("messages");
const wrapEl = document.getElementById("messages-wrap");
const emptyEl = document.getElementById("empty");
const formEl = document.getElementById("send");
const inputEl = document.getElementById("message");
const errorEl = document.getElementById("send-error");
const wsUrlEl = document.getElementById("ws-url");

const path = location.pathname;

// While a resumed connection replays what was missed: the first item it
// added, so the notice about the recovery goes before the replay (the
// server sends its recovery outcome after the replay).
let recovering = false;
let firstReplayed = null;
// The URL of the live connection, and how the last connection ended.
let liveUrl = "";
let lastClose = null;
let countdownTimer = null;

if (wsUrlEl) {
  wsUrlEl.textContent = (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + path;
}

const params = new URLSearchParams(location.search);
// The token last used, for the POST fallback's Authorization header too.
let token = params.get("token") || null;

// A channel that needs a token, opened without one (or a way to get one):
// say so instead of retrying a connection the server will refuse.
const needsToken = document.getElementById("main").dataset.needsToken === "1";
const client = needsToken && !token && !params.get("token_url") ? null : start();

function start() {
  return connect(path, {
    transport: forcedTransport(),
    token: params.get("token_url") ? renewToken : token,
    onMessage: showMessage,
    onRecovery: showRecovery,
    onStatus: showStatus,
    onClose: noteClose,
  });
}

if (client === null) {
  statusEl.className = "status closed";
  statusEl.textContent = "needs a token";
  statusEl.title = "this channel needs a token: open the page with ?token=<jwt>";
  statusEl.setAttribute("data-transport", "none");
}

// A fresh token from the page's own origin, before each (re)connection.
async function renewToken() {
  const response = await fetch(params.get("token_url"), { credentials: "same-origin" });
  if (!response.ok) {
    throw new Error("token request failed: " + response.status);
  }
  const text = (await response.text()).trim();
  try {
    const parsed = JSON.parse(text);
    token = typeof parsed === "string" ? parsed : parsed.token;
  } catch (err) {
    token = text;
  }
  return token;
}

function forcedTransport() {
  const forced = params.get("transport");
  // As before: forcing SSE where there is no EventSource keeps WebSockets.
  return forced === "sse" && typeof window.EventSource === "function" ? "sse" : "auto";
}

// Drawing messages ------------------------------------------------------------

function pad(n) {
  return n < 10 ? "0" + n : String(n);
}

function timestamp(date) {
  return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
}

function hexPreview(bytes) {
  const shown = Array.from(bytes.subarray(0, HEX_BYTES), (byte) => (byte < 16 ? "0" : "") + byte.toString(16));
  let text = "[binary, " + bytes.length + (bytes.length === 1 ? " byte]" : " bytes]");
  if (shown.length) {
    text += " " + shown.join(" ");
  }
  if (bytes.length > HEX_BYTES) {
    text += " \u2026";
  }
  return text;
}

function isAtBottom() {
  return wrapEl.scrollHeight - wrapEl.scrollTop - wrapEl.clientHeight < 24;
}

// An item of the list; text only ever goes in as textContent.
function makeItem(className, text) {
  const now = new Date();
  const item = document.createElement("li");
  item.className = className;

  const time = document.createElement("time");
  time.className = "time";
  time.dateTime = now.toISOString();
  time.textContent = timestamp(now);

  const body = document.createElement("span");
  body.className = "body";
  body.textContent = text;

  item.append(time, body);
  return item;
}

function insertItem(item, before) {
  const stick = isAtBottom();
  if (before && before.parentNode === listEl) {
    listEl.insertBefore(item, before);
  } else {
    listEl.appendChild(item);
  }
  while (listEl.children.length > MAX_MESSAGES) {
    listEl.removeChild(listEl.firstElementChild);
  }
  if (emptyEl) {
    emptyEl.hidden = true;
  }
  if (stick) {
    wrapEl.scrollTop = wrapEl.scrollHeight;
  }
}

function showMessage(message) {
  const binary = "bytes" in message;
  let text = message.data;
  if (binary) {
    text = message.bytes ? hexPreview(message.bytes) : "[binary, undecodable]";
  }
  const item = makeItem(binary ? "message binary" : "message", text);
  if (typeof message.channel === "string") {
    // On a subtree's page: which channel (or subtree) it was published to.
    const label = document.createElement("span");
    label.className = "channel";
    label.textContent = message.channel;
    item.insertBefore(label, item.lastElementChild);
  }
  insertItem(item, null);
  if (recovering && firstReplayed === null) {
    firstReplayed = item;
  }
  showPosition();
}

function showNotice(kind, text, before) {
  insertItem(makeItem("notice " + kind, text), before);
}

function showPosition() {
  if (client !== null && client.position !== null) {
    statusEl.setAttribute("data-position", client.position);
  }
}

function showRecovery(outcome) {
  const before = firstReplayed;
  recovering = false;
  firstReplayed = null;
  showPosition();
  let title;
  if (outcome.recovered) {
    const missed = outcome.missed;
    title = missed + (missed === 1 ? " missed message" : " missed messages") + " recovered";
    if (missed > 0) {
      showNotice("recovered", "Reconnected \u2014 " + title, before);
    }
  } else {
    title = "could not recover missed messages: " + (outcome.reason || "unknown reason");
    showNotice("lost", "Reconnected \u2014 " + title, null);
  }
  if (statusEl.classList.contains("live")) {
    statusEl.title = liveUrl + " \u2014 " + title;
  }
}

// The status badge ------------------------------------------------------------

function setBadge(state, text, title) {
  statusEl.className = "status " + state;
  statusEl.textContent = text;
  statusEl.title = title || "";
}

function closeTitle(info) {
  return "code " + info.code + (info.reason ? ": " + info.reason : "");
}

function showStatus(status) {
  clearInterval(countdownTimer);
  countdownTimer = null;
  statusEl.setAttribute("data-transport", status.transport);
  // Messages count as replayed from the moment a connection opens until its
  // recovery outcome arrives.
  recovering = status.state === "live";
  firstReplayed = null;
  if (status.state === "connecting") {
    lastClose = null;
    setBadge("connecting", "connecting\u2026", status.url);
  } else if (status.state === "live") {
    liveUrl = status.url;
    setBadge("live", "live", status.url);
  } else if (status.state === "reconnecting") {
    showCountdown(status);
  } else {
    setBadge("closed", status.transport === "none" ? "cannot connect" : "closed", status.detail);
  }
}

// "<why> — reconnecting in Ns", counting down to the next attempt.
function showCountdown(status) {
  const deadline = Date.now() + status.retryIn;
  const prefix = status.detail ? status.detail + " \u2014 " : "";
  const title = lastClose ? closeTitle(lastClose) : status.url;
  function tick() {
    const seconds = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    setBadge("reconnecting", prefix + "reconnecting in " + seconds + "s", title);
  }
  tick();
  countdownTimer = setInterval(tick, 250);
}

// A message the server refused over the WebSocket ends the connection: say
// so by the send box, since it is not sent again.
function noteClose(info) {
  lastClose = info;
  if (info.transport !== "websocket") {
    return;
  }
  if (info.code === 1008) {
    showError("Refused by the server: " + (info.reason || "policy") + ". It was not resent.");
  } else if (info.code === 1009) {
    showError("Message too big: " + (info.reason || "over the server's limit") + ". It was not resent.");
  }
}

// Sending -----------------------------------------------------------------------

function showError(text) {
  errorEl.textContent = text;
  errorEl.hidden = false;
}

function clearError() {
  errorEl.textContent = "";
  errorEl.hidden = true;
}

// Publish by HTTP POST (when not on an open WebSocket).
async function publish(text) {
  let response;
  try {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    response = await fetch(path, { method: "POST", body: text, headers });
  } catch (err) {
    showError("Could not publish: " + (err && err.message ? err.message : String(err)));
    return;
  }
  if (response.ok) {
    return;
  }
  const body = await response.text();
  let message = "";
  try {
    const parsed = JSON.parse(body);
    message = (parsed && (parsed.message || parsed.error)) || "";
  } catch (err) {
    message = body;
  }
  showError("Could not publish (" + response.status + "): " + (message || response.statusText));
}

// A subtree's page has no form: a message has no single channel to go to.
formEl?.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = inputEl.value;
  if (!text) {
    return;
  }
  clearError();
  let sent;
  try {
    sent = client !== null && client.send(text);
  } catch (err) {
    showError("Could not send: " + err);
    return;
  }
  if (!sent) {
    publish(text);
  }
  inputEl.value = "";
  inputEl.focus();
});

// Presence ----------------------------------------------------------------------

// The live count of subscribers (on every process), refreshed every few
// seconds while the page is visible; hidden where the server does not let
// this page ask (a publish key or tokens without a grant: 401/403).
const PRESENCE_EVERY_MS = 5000;
const presenceEl = document.getElementById("presence");
const presenceUrl = document.getElementById("main").dataset.presenceUrl;
let presenceTimer = null;
let presenceAsking = false;

async function refreshPresence() {
  presenceTimer = null;
  if (!presenceEl || !presenceUrl || presenceAsking) {
    return;
  }
  presenceAsking = true;
  const url = new URL(presenceUrl, location.href);
  if (token) {
    url.searchParams.set("token", token);
  }
  if (url.pathname.endsWith("/")) {
    url.searchParams.set("limit", "1"); // A subtree's total is all the page shows.
  }
  try {
    const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401 || response.status === 403) {
      presenceEl.hidden = true;
      presenceAsking = false;
      return; // Not ours to see: stop asking.
    }
    if (response.ok) {
      const answer = await response.json();
      const count = Number(answer.subscribers) || 0;
      presenceEl.textContent = count + (count === 1 ? " subscriber" : " subscribers");
      presenceEl.setAttribute("data-subscribers", String(count));
      presenceEl.hidden = false;
    }
  } catch (err) {
    // Offline or restarting: keep the last count and try again later.
  }
  presenceAsking = false;
  if (!document.hidden) {
    presenceTimer = setTimeout(refreshPresence, PRESENCE_EVERY_MS);
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && presenceTimer === null) {
    refreshPresence();
  }
});
if (client !== null) {
  refreshPresence();
}

// Page lifecycle ----------------------------------------------------------------

// Reconnect right away when the page comes back online.
window.addEventListener("online", () => {
  if (client !== null && client.state === "reconnecting") {
    client.resume();
  }
});

// Leaving the page (or going into the back/forward cache): close the
// connection now, so the server lets go of the subscription at once
// instead of when the socket finally times out.
window.addEventListener("pagehide", () => client?.suspend());

// Back from the back/forward cache: reconnect, resuming from the last
// position shown, so what was published meanwhile appears once.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) {
    client?.resume();
  }
});
