/* Live view of one channel: subscribe over a WebSocket, show messages, send. */
(function () {
  "use strict";

  var MAX_MESSAGES = 500;
  var HEX_BYTES = 32;
  var BACKOFF_START_MS = 500;
  var BACKOFF_CAP_MS = 10000;
  // A connection that stays open this long resets the backoff; one that the
  // server closes straight away keeps backing off instead of hammering it.
  var STABLE_MS = 2000;

  var CLOSE_REASONS = {
    1000: "closed",
    1001: "server restarting",
    1006: "connection lost",
    1008: "rejected by policy",
    1009: "message too big",
    1011: "internal server error",
    1013: "broker unavailable, messages may have been missed",
    4008: "too slow to keep up, messages were dropped"
  };
  // Codes after which reconnecting cannot help.
  var FINAL_CODES = { 1008: true };

  var statusEl = document.getElementById("status");
  var listEl = document.getElementById("messages");
  var wrapEl = document.getElementById("messages-wrap");
  var emptyEl = document.getElementById("empty");
  var formEl = document.getElementById("send");
  var inputEl = document.getElementById("message");
  var errorEl = document.getElementById("send-error");
  var wsUrlEl = document.getElementById("ws-url");

  var wsUrl = (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + location.pathname;
  if (wsUrlEl) {
    wsUrlEl.textContent = wsUrl;
  }

  var ws = null;
  var backoff = BACKOFF_START_MS;
  var retryTimer = null;
  var countdownTimer = null;
  var stableTimer = null;

  function setStatus(state, text, title) {
    statusEl.className = "status " + state;
    statusEl.textContent = text;
    statusEl.title = title || "";
  }

  function pad(n) {
    return n < 10 ? "0" + n : String(n);
  }

  function timestamp(date) {
    return pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function hexPreview(buffer) {
    var bytes = new Uint8Array(buffer);
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

  function isAtBottom() {
    return wrapEl.scrollHeight - wrapEl.scrollTop - wrapEl.clientHeight < 24;
  }

  function appendItem(kind, text) {
    var stick = isAtBottom();
    var now = new Date();

    var item = document.createElement("li");
    item.className = "message" + (kind ? " " + kind : "");

    var time = document.createElement("time");
    time.className = "time";
    time.dateTime = now.toISOString();
    time.textContent = timestamp(now);

    var body = document.createElement("span");
    body.className = "body";
    body.textContent = text;

    item.appendChild(time);
    item.appendChild(body);
    listEl.appendChild(item);

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

  function showMessage(data) {
    if (typeof data === "string") {
      appendItem("", data);
    } else if (data instanceof ArrayBuffer) {
      appendItem("binary", hexPreview(data));
    } else if (data && typeof data.arrayBuffer === "function") {
      // Blob, in case binaryType was changed.
      data.arrayBuffer().then(function (buffer) {
        appendItem("binary", hexPreview(buffer));
      });
    }
  }

  function showError(text) {
    errorEl.textContent = text;
    errorEl.hidden = false;
  }

  function clearError() {
    errorEl.textContent = "";
    errorEl.hidden = true;
  }

  function describeClose(event) {
    var label = CLOSE_REASONS[event.code] || "closed";
    var detail = "code " + event.code + (event.reason ? ": " + event.reason : "");
    return { label: label, detail: detail };
  }

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

  function scheduleReconnect(why) {
    clearTimers();
    // Full jitter between half and all of the current backoff.
    var delay = Math.round(backoff / 2 + Math.random() * backoff / 2);
    backoff = Math.min(backoff * 2, BACKOFF_CAP_MS);
    var deadline = Date.now() + delay;
    var prefix = why ? why + " \u2014 " : "";

    function tick() {
      var seconds = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      setStatus("reconnecting", prefix + "reconnecting in " + seconds + "s", statusEl.title);
    }
    tick();
    countdownTimer = setInterval(tick, 250);
    retryTimer = setTimeout(function () {
      clearTimers();
      connect();
    }, delay);
  }

  function connect() {
    clearTimers();
    setStatus("connecting", "connecting\u2026");
    var socket;
    try {
      socket = new WebSocket(wsUrl);
    } catch (err) {
      setStatus("closed", "cannot connect", String(err));
      return;
    }
    socket.binaryType = "arraybuffer";
    ws = socket;

    socket.addEventListener("open", function () {
      if (ws !== socket) {
        return;
      }
      clearTimeout(stableTimer);
      stableTimer = setTimeout(function () {
        backoff = BACKOFF_START_MS;
      }, STABLE_MS);
      setStatus("live", "live", wsUrl);
    });

    socket.addEventListener("message", function (event) {
      if (ws === socket) {
        showMessage(event.data);
      }
    });

    socket.addEventListener("close", function (event) {
      if (ws !== socket) {
        return;
      }
      ws = null;
      clearTimeout(stableTimer);
      var info = describeClose(event);
      if (FINAL_CODES[event.code]) {
        setStatus("closed", "closed: " + info.label + " (" + info.detail + ")", info.detail);
        return;
      }
      statusEl.title = info.detail;
      var why = "";
      if (event.code === 1006) {
        why = info.label;
      } else if (event.code !== 1000 && event.code !== 1005) {
        why = info.label + " (" + event.code + (event.reason ? ": " + event.reason : "") + ")";
      }
      scheduleReconnect(why);
    });
  }

  function postMessage(text) {
    return fetch(location.pathname, { method: "POST", body: text }).then(function (response) {
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
    if (ws && ws.readyState === WebSocket.OPEN) {
      try {
        ws.send(text);
      } catch (err) {
        showError("Could not send: " + err);
        return;
      }
    } else {
      postMessage(text);
    }
    inputEl.value = "";
    inputEl.focus();
  });

  // Reconnect right away when the page comes back online or to the foreground.
  window.addEventListener("online", function () {
    if (!ws && retryTimer !== null) {
      backoff = BACKOFF_START_MS;
      connect();
    }
  });

  connect();
})();
