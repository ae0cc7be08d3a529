/* Live view of one channel: subscribe, show every message exactly once, send.
 *
 * Transport: a WebSocket that asks for positions (?positions=1), and resumes
 * after a reconnect from the last position seen (?since=<epoch>:<seq>): the
 * server replays what was missed, then says whether that was everything.
 * Where WebSockets are unavailable or never open, server-sent events
 * (EventSource) carry the same stream, resumed with ?lastEventId=.
 * ?transport=sse on the page's URL forces server-sent events.
 */
(function () {
  "use strict";

  var MAX_MESSAGES = 500;
  var HEX_BYTES = 32;
  var BACKOFF_START_MS = 500;
  var BACKOFF_CAP_MS = 10000;
  // A connection that stays open this long resets the backoff; one that the
  // server closes straight away keeps backing off instead of hammering it.
  var STABLE_MS = 2000;
  // WebSocket attempts that fail without ever opening before switching to SSE.
  var WS_FAILURES_BEFORE_SSE = 3;
  // A connection attempt that neither opens nor fails within this long is
  // abandoned (a proxy that swallows the upgrade, a blocked connection).
  var CONNECT_TIMEOUT_MS = 10000;
  var POSITION = /^([0-9a-f]{1,32}):([0-9]{1,19})$/;

  var CLOSE_REASONS = {
    1000: "closed",
    1001: "server restarting",
    1006: "connection lost",
    1008: "rejected by policy",
    1009: "message too big",
    1011: "internal server error",
    1013: "broker connection lost",
    4008: "too slow to keep up"
  };

  var statusEl = document.getElementById("status");
  var listEl = document.getElementById("messages");
  var wrapEl = document.getElementById("messages-wrap");
  var emptyEl = document.getElementById("empty");
  var formEl = document.getElementById("send");
  var inputEl = document.getElementById("message");
  var errorEl = document.getElementById("send-error");
  var wsUrlEl = document.getElementById("ws-url");

  var path = location.pathname;
  var wsUrl = (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + path;
  if (wsUrlEl) {
    wsUrlEl.textContent = wsUrl;
  }

  var hasWebSocket = typeof window.WebSocket === "function";
  var hasEventSource = typeof window.EventSource === "function";
  var forced = "";
  try {
    forced = new URLSearchParams(location.search).get("transport") || "";
  } catch (err) {
    forced = "";
  }
  var transport = hasWebSocket && !(forced === "sse" && hasEventSource) ? "websocket" : "sse";

  // The open (or opening) connection: { kind, socket | source }, or null.
  var conn = null;
  var backoff = BACKOFF_START_MS;
  var retryTimer = null;
  var countdownTimer = null;
  var stableTimer = null;
  var connectTimer = null;
  var wsEverOpened = false;
  var wsFailures = 0;
  // Between pagehide and pageshow: no connection, and no reconnecting.
  var pageHidden = false;

  // The last position shown: epoch (hex) and seq (decimal string: it may
  // exceed 2^53, so it is compared as a string, never as a Number).
  var lastEpoch = null;
  var lastSeq = null;
  // While a resumed connection replays what was missed: the first item it
  // added, so the notice about the recovery goes before the replay.
  var recovering = false;
  var firstReplayed = null;
  var liveUrl = "";

  function setStatus(state, text, title) {
    statusEl.className = "status " + state;
    statusEl.textContent = text;
    statusEl.title = title || "";
    statusEl.setAttribute("data-transport", transport);
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function timestamp(date) {
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function hexPreview(bytes) {
    var parts = [];
    var n = Math.min(bytes.length, HEX_BYTES);
    for (var i = 0; i < n; i++) {
      parts.push((bytes[i] < 16 ? "0" : "") + bytes[i].toString(16));
    }
    var text = "[binary, " + bytes.length + (bytes.length === 1 ? " byte]" : " bytes]");
    if (parts.length) {
      text += " " + parts.join(" ");
    }
    if (bytes.length > HEX_BYTES) {
      text += " \u2026";
    }
    return text;
  }

  function decodeBase64(text) {
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      bytes[i] = raw.charCodeAt(i);
    }
    return bytes;
  }

  function isAtBottom() {
    return wrapEl.scrollHeight - wrapEl.scrollTop - wrapEl.clientHeight < 24;
  }

  function makeItem(className, text) {
    var now = new Date();
    var item = document.createElement("li");
    item.className = className;

    var time = document.createElement("time");
    time.className = "time";
    time.dateTime = now.toISOString();
    time.textContent = timestamp(now);

    var body = document.createElement("span");
    body.className = "body";
    body.textContent = text;

    item.appendChild(time);
    item.appendChild(body);
    return item;
  }

  function insertItem(item, before) {
    var stick = isAtBottom();
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

  function appendMessage(kind, text) {
    var item = makeItem("message" + (kind ? " " + kind : ""), text);
    insertItem(item, null);
    if (recovering && firstReplayed === null) {
      firstReplayed = item;
    }
  }

  function showNotice(kind, text, before) {
    insertItem(makeItem("notice " + kind, text), before);
  }

  // Positions ---------------------------------------------------------------

  function seqGreater(a, b) {
    a = a.replace(/^0+(?=\d)/, "");
    b = b.replace(/^0+(?=\d)/, "");
    return a.length !== b.length ? a.length > b.length : a > b;
  }

  function lastPosition() {
    return lastEpoch === null ? null : lastEpoch + ":" + lastSeq;
  }

  // Whether a message at `position` is new; if so, remember it as the last.
  // A message without a readable position is shown and not remembered.
  function isNew(position) {
    var match = typeof position === "string" ? POSITION.exec(position) : null;
    if (!match) {
      return true;
    }
    if (match[1] === lastEpoch && !seqGreater(match[2], lastSeq)) {
      return false;
    }
    lastEpoch = match[1];
    lastSeq = match[2];
    statusEl.setAttribute("data-position", lastEpoch + ":" + lastSeq);
    return true;
  }

  function showPayload(position, text, base64) {
    if (!isNew(position)) {
      return;
    }
    if (typeof text === "string") {
      appendMessage("", text);
      return;
    }
    var preview;
    try {
      preview = hexPreview(decodeBase64(base64));
    } catch (err) {
      preview = "[binary, undecodable]";
    }
    appendMessage("binary", preview);
  }

  function showRecovery(outcome) {
    var before = firstReplayed;
    recovering = false;
    firstReplayed = null;
    // The server says where to continue from: the last message replayed, or
    // (for a fresh page, or after a failed recovery) the head of its history.
    // Adopted as is, even in a new epoch, so the next reconnect resumes from it.
    var next = typeof outcome.position === "string" ? POSITION.exec(outcome.position) : null;
    if (next) {
      lastEpoch = next[1];
      lastSeq = next[2];
      statusEl.setAttribute("data-position", lastEpoch + ":" + lastSeq);
    }
    var missed = Number(outcome.missed) || 0;
    var title;
    if (outcome.recovered === true) {
      title = missed + (missed === 1 ? " missed message" : " missed messages") + " recovered";
      if (missed > 0) {
        showNotice("recovered", "Reconnected \u2014 " + title, before);
      }
    } else {
      var reason = typeof outcome.reason === "string" && outcome.reason ? outcome.reason : "unknown reason";
      title = "could not recover missed messages: " + reason;
      showNotice("lost", "Reconnected \u2014 " + title, null);
    }
    if (statusEl.classList.contains("live")) {
      statusEl.title = liveUrl + " \u2014 " + title;
    }
  }

  // One frame of the WebSocket's stream: an envelope, a control message, or
  // (from a server that ignored ?positions=1) a raw payload.
  function handleFrame(data) {
    if (data instanceof ArrayBuffer) {
      appendMessage("binary", hexPreview(new Uint8Array(data)));
      return;
    }
    var parsed = null;
    try {
      parsed = JSON.parse(data);
    } catch (err) {
      parsed = null;
    }
    if (parsed && typeof parsed === "object" && typeof parsed.position === "string") {
      if (typeof parsed.data === "string") {
        showPayload(parsed.position, parsed.data, null);
        return;
      }
      if (typeof parsed.binary === "string") {
        showPayload(parsed.position, null, parsed.binary);
        return;
      }
    }
    if (parsed && typeof parsed === "object" && typeof parsed.recovered === "boolean") {
      showRecovery(parsed);
      return;
    }
    appendMessage("", data);
  }

  // Errors of the send box ----------------------------------------------------

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = false;
  }

  function clearError() {
    errorEl.textContent = "";
    errorEl.hidden = true;
  }

  // Connecting and reconnecting ---------------------------------------------

  function clearTimers() {
    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (countdownTimer !== null) {
      clearInterval(countdownTimer);
      countdownTimer = null;
    }
  }

  function scheduleReconnect(why, title) {
    clearTimers();
    clearTimeout(stableTimer);
    // Full jitter between half and all of the current backoff.
    var delay = Math.round(backoff / 2 + Math.random() * backoff / 2);
    backoff = Math.min(backoff * 2, BACKOFF_CAP_MS);
    var deadline = Date.now() + delay;
    var prefix = why ? why + " \u2014 " : "";

    function tick() {
      var seconds = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      setStatus("reconnecting", prefix + "reconnecting in " + seconds + "s", title);
    }
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(function () {
      clearTimers();
      connect();
    }, delay);
  }

  // Run `abandon` unless the attempt opens (or ends) within CONNECT_TIMEOUT_MS.
  function startConnectTimer(abandon) {
    clearTimeout(connectTimer);
    connectTimer = setTimeout(function () {
      connectTimer = null;
      abandon();
    }, CONNECT_TIMEOUT_MS);
  }

  function stopConnectTimer() {
    clearTimeout(connectTimer);
    connectTimer = null;
  }

  function opened(url) {
    stopConnectTimer();
    clearTimeout(stableTimer);
    stableTimer = setTimeout(function () {
      backoff = BACKOFF_START_MS;
    }, STABLE_MS);
    liveUrl = url;
    setStatus("live", "live", url);
  }

  function connect() {
    clearTimers();
    if (transport === "websocket") {
      connectWebSocket();
    } else if (hasEventSource) {
      connectEventSource();
    } else {
      transport = "none";
      setStatus("closed", "cannot connect", "this browser has neither WebSocket nor EventSource");
    }
  }

  // A WebSocket attempt failed without opening: retry, or switch to SSE.
  function webSocketFailed(why, title) {
    wsFailures += 1;
    if (!wsEverOpened && wsFailures >= WS_FAILURES_BEFORE_SSE && hasEventSource) {
      transport = "sse";
      backoff = BACKOFF_START_MS;
      scheduleReconnect("WebSocket unavailable, switching to server-sent events", title);
      return;
    }
    scheduleReconnect(why, title);
  }

  function connectWebSocket() {
    var resumeFrom = lastPosition();
    var url = wsUrl + (resumeFrom ? "?since=" + encodeURIComponent(resumeFrom) : "?positions=1");
    setStatus("connecting", "connecting\u2026", url);
    var socket;
    try {
      socket = new WebSocket(url);
    } catch (err) {
      conn = null;
      webSocketFailed("cannot connect", String(err));
      return;
    }
    socket.binaryType = "arraybuffer";
    var isOpen = false;
    conn = { kind: "websocket", socket: socket };
    startConnectTimer(function () {
      if (!conn || conn.socket !== socket || isOpen) {
        return;
      }
      conn = null;
      try {
        socket.close();
      } catch (err) {
        // Closing a socket that never opened: nothing more to do.
      }
      webSocketFailed("connection timed out", url);
    });

    socket.addEventListener("open", function () {
      if (!conn || conn.socket !== socket) {
        return;
      }
      isOpen = true;
      wsEverOpened = true;
      wsFailures = 0;
      recovering = resumeFrom !== null;
      firstReplayed = null;
      opened(url);
    });

    socket.addEventListener("message", function (event) {
      if (conn && conn.socket === socket) {
        handleFrame(event.data);
      }
    });

    socket.addEventListener("close", function (event) {
      if (!conn || conn.socket !== socket) {
        return;
      }
      conn = null;
      stopConnectTimer();
      recovering = false;
      firstReplayed = null;
      var label = CLOSE_REASONS[event.code] || "closed";
      var detail = "code " + event.code + (event.reason ? ": " + event.reason : "");
      if (event.code === 1008) {
        showError("Refused by the server: " + (event.reason || "policy") + ". It was not resent.");
      } else if (event.code === 1009) {
        showError("Message too big: " + (event.reason || "over the server's limit") + ". It was not resent.");
      }
      var why = "";
      if (event.code === 1006) {
        why = label;
      } else if (event.code !== 1000 && event.code !== 1005) {
        why = label + " (" + event.code + (event.reason ? ": " + event.reason : "") + ")";
      }
      if (!isOpen) {
        webSocketFailed(why || label, detail);
      } else {
        scheduleReconnect(why, detail);
      }
    });
  }

  function connectEventSource() {
    var resumeFrom = lastPosition();
    var url = path + (resumeFrom ? "?lastEventId=" + encodeURIComponent(resumeFrom) : "");
    setStatus("connecting", "connecting\u2026", url);
    var source;
    try {
      source = new EventSource(url);
    } catch (err) {
      conn = null;
      scheduleReconnect("cannot connect", String(err));
      return;
    }
    conn = { kind: "sse", source: source };
    startConnectTimer(function () {
      if (current() && source.readyState !== EventSource.OPEN) {
        end("connection timed out", url);
      }
    });

    function current() {
      return conn !== null && conn.source === source;
    }

    // EventSource would reconnect by itself, but with the URL it started
    // from: every reconnect is ours instead, from the latest position.
    function end(why, title) {
      source.close();
      conn = null;
      stopConnectTimer();
      recovering = false;
      firstReplayed = null;
      scheduleReconnect(why, title);
    }

    source.addEventListener("open", function () {
      if (!current()) {
        return;
      }
      recovering = resumeFrom !== null;
      firstReplayed = null;
      opened(url);
    });

    source.addEventListener("message", function (event) {
      if (current()) {
        showPayload(event.lastEventId, event.data, null);
      }
    });

    source.addEventListener("binary", function (event) {
      if (current()) {
        showPayload(event.lastEventId, null, event.data);
      }
    });

    source.addEventListener("recovery", function (event) {
      if (!current()) {
        return;
      }
      try {
        showRecovery(JSON.parse(event.data));
      } catch (err) {
        showRecovery({ recovered: false, reason: "unreadable recovery outcome" });
      }
    });

    source.addEventListener("close", function (event) {
      if (!current()) {
        return;
      }
      var info = {};
      try {
        info = JSON.parse(event.data) || {};
      } catch (err) {
        info = {};
      }
      var code = Number(info.code) || 0;
      var label = CLOSE_REASONS[code] || "closed";
      var detail = "code " + code + (info.reason ? ": " + info.reason : "");
      end(label + " (" + code + (info.reason ? ": " + info.reason : "") + ")", detail);
    });

    source.addEventListener("error", function () {
      if (current()) {
        end("connection lost", url);
      }
    });
  }

  // Sending -------------------------------------------------------------------

  function publish(text) {
    return fetch(path, { method: "POST", body: text }).then(function (response) {
      if (response.ok) {
        return;
      }
      return response.text().then(function (body) {
        var message = "";
        try {
          var parsed = JSON.parse(body);
          message = parsed && (parsed.message || parsed.error) || "";
        } catch (err) {
          message = body;
        }
        showError("Could not publish (" + response.status + "): " + (message || response.statusText));
      });
    }, function (err) {
      showError("Could not publish: " + (err && err.message ? err.message : String(err)));
    });
  }

  formEl.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = inputEl.value;
    if (!text) {
      return;
    }
    clearError();
    if (conn && conn.kind === "websocket" && conn.socket.readyState === WebSocket.OPEN) {
      try {
        conn.socket.send(text);
      } catch (err) {
        showError("Could not send: " + err);
        return;
      }
    } else {
      publish(text);
    }
    inputEl.value = "";
    inputEl.focus();
  });

  // Reconnect right away when the page comes back online.
  window.addEventListener("online", function () {
    if (!conn && retryTimer !== null && !pageHidden) {
      backoff = BACKOFF_START_MS;
      connect();
    }
  });

  // Leaving the page (or going into the back/forward cache): close the
  // connection now, so the server lets go of the subscription at once
  // instead of when the socket finally times out.
  window.addEventListener("pagehide", function () {
    pageHidden = true;
    clearTimers();
    stopConnectTimer();
    clearTimeout(stableTimer);
    var current = conn;
    conn = null;
    recovering = false;
    firstReplayed = null;
    if (current && current.kind === "websocket") {
      try {
        current.socket.close(1000, "page hidden");
      } catch (err) {
        // Already closing: nothing more to do.
      }
    } else if (current) {
      current.source.close();
    }
  });

  // Back from the back/forward cache: reconnect, resuming from the last
  // position shown, so what was published meanwhile appears once.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted && pageHidden) {
      pageHidden = false;
      backoff = BACKOFF_START_MS;
      connect();
    }
  });

  connect();
})();
