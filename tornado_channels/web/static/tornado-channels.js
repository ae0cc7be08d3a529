/**
 * A client for one channel of a tornado_channels server.
 *
 * It subscribes over a WebSocket that asks for positions (`?positions=1`)
 * and, after a reconnect, resumes from the last position seen
 * (`?since=<epoch>:<seq>`): the server replays what was missed, then reports
 * whether that was everything. Where WebSockets are unavailable or never
 * open, server-sent events (EventSource) carry the same stream, resumed with
 * `?lastEventId=`. Every message is delivered once, in order, whatever the
 * reconnects.
 *
 * No DOM access: only WebSocket, EventSource, setTimeout/clearTimeout and
 * URL/URLSearchParams, so it runs in pages, workers and other runtimes.
 *
 * @example
 * import { connect } from "./tornado-channels.js";
 * const client = connect("/users/1", {
 *   onMessage: (message) => console.log(message.position, message.data),
 * });
 *
 * @module tornado-channels
 */

const BACKOFF_START_MS = 500;
const BACKOFF_CAP_MS = 10000;
// A connection that stays open this long resets the backoff; one that the
// server closes straight away keeps backing off instead of hammering it.
const STABLE_MS = 2000;
// WebSocket attempts that fail without ever opening before switching to SSE.
const WS_FAILURES_BEFORE_SSE = 3;
// A connection attempt that neither opens nor fails within this long is
// abandoned (a proxy that swallows the upgrade, a blocked connection).
const CONNECT_TIMEOUT_MS = 10000;
// "<epoch>:<seq>": epoch in hex, seq in decimal (as the server writes them).
const POSITION = /^([0-9a-f]{1,32}):([0-9]{1,19})$/;
const TRANSPORT_CHOICES = ["auto", "websocket", "sse"];

/**
 * What each WebSocket close code means, as short human text. Codes missing
 * here read as "closed" (see {@link closeLabel}).
 *
 * @type {Readonly<Record<number, string>>}
 */
export const CLOSE_LABELS = Object.freeze({
  1000: "closed",
  1001: "server restarting",
  1002: "protocol error",
  1003: "unsupported data",
  1005: "closed",
  1006: "connection lost",
  1007: "invalid data",
  1008: "rejected by policy",
  1009: "message too big",
  1011: "internal server error",
  1013: "broker connection lost",
  4001: "token expired",
  4008: "too slow to keep up",
});

/**
 * The human label of a WebSocket close code.
 *
 * @param {number} code a close code, e.g. 1001
 * @returns {string} e.g. "server restarting"; "closed" for an unknown code
 */
export function closeLabel(code) {
  return CLOSE_LABELS[code] || "closed";
}

/**
 * `<epoch>:<seq>`: where a message sits in its channel's history (the epoch
 * in hex, the seq in decimal, as the server writes them).
 *
 * @typedef {string} Position
 */

/**
 * A text message, exactly as published.
 *
 * @typedef {object} TextMessage
 * @property {Position | null} position where the message sits in the
 *   channel, or null when the server gave none
 * @property {string} data the text, exactly as published
 * @property {string} [channel] where it was published (`users/2/inbox`, or a
 *   subtree such as `users/`): set for subscriptions to a subtree (`/users/`)
 */

/**
 * A message whose bytes are not UTF-8.
 *
 * @typedef {object} BinaryMessage
 * @property {Position | null} position as for {@link TextMessage}
 * @property {Uint8Array | null} bytes the bytes as published, or null when
 *   the server's base64 could not be decoded
 * @property {string} [channel] as for {@link TextMessage}
 */

/**
 * One published message: `"data" in message` tells text from bytes.
 *
 * @typedef {TextMessage | BinaryMessage} Message
 */

/**
 * The server's answer to a (re)connect: whether everything missed was replayed.
 *
 * @typedef {object} RecoveryOutcome
 * @property {boolean} recovered true if every missed message was replayed
 * @property {number} missed how many messages were replayed
 * @property {Position | null} position where the stream continues from
 *   (adopted as the client's position); null if the server sent none
 * @property {string} [reason] why nothing could be recovered (when not recovered)
 */

/**
 * Where a client is: connecting (an attempt under way), live (connected),
 * reconnecting (waiting out a backoff), closed (close(), suspend(), or no
 * transport available here).
 *
 * @typedef {"connecting" | "live" | "reconnecting" | "closed"} State
 */

/**
 * The transport in use; "none" when neither of the choice exists here.
 *
 * @typedef {"websocket" | "sse" | "none"} TransportName
 */

/**
 * Which transports a client may use: "auto" is WebSocket, with server-sent
 * events as the fallback.
 *
 * @typedef {"auto" | "websocket" | "sse"} TransportChoice
 */

/**
 * What onStatus is told on every change of state.
 *
 * @typedef {object} Status
 * @property {State} state the state entered
 * @property {TransportName} transport the transport in use, or of the next attempt
 * @property {string} url the stream's URL (without the token), of the current
 *   or last attempt
 * @property {string} detail human text on what happened ("" when nothing to say),
 *   e.g. "server restarting (1001: shutting down)"
 * @property {number | null} retryIn ms until the next attempt (when
 *   reconnecting), else null
 */

/**
 * How one connection ended.
 *
 * @typedef {object} CloseInfo
 * @property {number} code the WebSocket close code (a stream that drops or an
 *   attempt that times out reads as 1006, as a browser reports it)
 * @property {string} reason the server's reason, or "" when none
 * @property {string} label {@link closeLabel} of the code
 * @property {"websocket" | "sse"} transport the transport of that connection
 */

/**
 * A user's first subscription to a channel on the whole deployment, or
 * their last one gone.
 *
 * @typedef {object} PresenceEvent
 * @property {"join" | "leave"} presence what happened
 * @property {string} user who (a token's `sub`)
 * @property {string} channel where (a channel, or a subtree such as `users/`)
 */

/**
 * A token; null, undefined or "" for none.
 *
 * @typedef {string | null | undefined} TokenValue
 */

/**
 * A token, or a provider called before every (re)connect (e.g. to renew an
 * expiring one).
 *
 * @typedef {TokenValue | (() => TokenValue | Promise<TokenValue>)} TokenOption
 */

/**
 * What connect() accepts besides the URL; every option may be left out.
 *
 * @typedef {object} ConnectOptions
 * @property {Position} [since] a position to resume from
 * @property {TransportChoice} [transport] "auto" (the default):
 *   WebSocket, with server-sent events as the fallback; or only one of them
 * @property {TokenOption} [token] sent as `?token=` on every connection; a
 *   function is called before every (re)connect. null, undefined or "" send none
 * @property {(message: Message) => void} [onMessage] once per message,
 *   never twice for the same position
 * @property {(event: PresenceEvent) => void} [onPresence] joins and leaves:
 *   with it, the client asks for them (`?presence=1`), and is told each time a
 *   user's first subscription to the channel appears on the whole deployment
 *   or their last one goes (users are tokens' `sub`)
 * @property {(outcome: RecoveryOutcome) => void} [onRecovery] each time a
 *   connection reports its recovery outcome: first thing on a fresh
 *   connection, right after the replay on a resumed one
 * @property {(status: Status) => void} [onStatus] on every change of state
 * @property {(info: CloseInfo) => void} [onClose] every time a connection or
 *   attempt ends without close() or suspend() having asked for it
 */

/**
 * What a client reports about itself: read-only views of its progress.
 *
 * @typedef {object} ClientView
 * @property {Position | null} position the last position seen
 * @property {TransportName} transport the current transport
 * @property {State} state the current state
 */

/**
 * What a client can be asked to do.
 *
 * @typedef {object} ClientControls
 * @property {() => void} close stop for good: close the connection, never reconnect
 * @property {(text: string) => boolean} send send over the open WebSocket;
 *   false when not connected over a WebSocket (publish by HTTP POST then)
 * @property {() => void} suspend close the connection now and do not
 *   reconnect until resume() (e.g. on pagehide)
 * @property {() => void} resume reconnect now, from the last position, when
 *   suspended or waiting to reconnect (e.g. on pageshow, online)
 */

/**
 * A subscription that stays subscribed, as connect() returns it. Its
 * methods need no `this`: `addEventListener("pagehide", client.suspend)`
 * works.
 *
 * @typedef {ClientControls & Readonly<ClientView>} Client
 */

/**
 * Subscribe to one channel, and stay subscribed: reconnect with backoff and
 * resume from the last position after every drop, until close().
 *
 * Callbacks are never called before connect() returns. An exception thrown
 * by one is reported (rethrown from a timer) and does not stop the client.
 *
 * @param {string} url the channel's URL: `ws://`, `wss://`, `http://` or
 *   `https://`, or a path such as "/users/1" (resolved against `location`)
 * @param {ConnectOptions} [options]
 * @returns {Client}
 * @throws {TypeError} for a URL that is not a channel's, an unknown
 *   transport, or an unreadable `since`
 */
export function connect(url, options = {}) {
  const subscription = new Subscription(url, options);
  return {
    close: () => subscription.close(),
    send: (text) => subscription.send(text),
    suspend: () => subscription.suspend(),
    resume: () => subscription.resume(),
    get position() {
      return subscription.position;
    },
    get transport() {
      return subscription.transport;
    },
    get state() {
      return subscription.state;
    },
  };
}

// The state machine ------------------------------------------------------------
//
//   connecting ── opened ──────────────────────────────▶ live
//   connecting ── failed, timed out, no token ─────────▶ reconnecting
//   connecting ── no transport of the choice here ─────▶ closed
//   live ──────── the connection ended by itself ──────▶ reconnecting
//   reconnecting ─ backoff elapsed, or resume() ───────▶ connecting
//   any ───────── close() (for good), suspend() ───────▶ closed
//   closed ────── resume() after suspend() ────────────▶ connecting
//
// Every attempt has a number: leaving an attempt (it ends, times out, or is
// stopped) bumps it, and what an older attempt reports late (a message, a
// close, a token resolved after suspend()) is ignored.

class Subscription {
  /**
   * @param {string} url
   * @param {ConnectOptions} options
   */
  constructor(url, options) {
    // Checked now, so a bad option throws from connect() itself.
    this.urls = channelUrls(url);
    this.positions = createPositionTracker(readSince(options.since));
    this.choice = readTransportChoice(options.transport);
    // Read once: changing the object afterwards changes nothing.
    this.options = { ...options };
    this.presenceQuery = typeof options.onPresence === "function" ? { presence: "1" } : {};
    this.backoff = createBackoff();

    /** @type {TransportName} */
    this.transport = initialTransport(this.choice);
    /** @type {State} */
    this.state = "connecting";
    this.stopped = false; // close(): never again
    this.suspended = false; // suspend(): not until resume()

    this.attempt = 0;
    this.attemptUrl = "";
    this.stream = null; // the open (or opening) connection, or null
    this.retryTimer = null; // reconnecting: when to connect again
    this.connectTimer = null; // connecting: when to give up
    this.stableTimer = null; // live: when the backoff is reset

    // WebSocket attempts that failed in a row without opening, and whether
    // one ever opened (then it never falls back to SSE).
    this.wsFailures = 0;
    this.wsEverOpened = false;

    // Start on the next turn, so no callback runs before connect() returns
    // (unless close(), suspend() or resume() came first).
    Promise.resolve().then(() => {
      if (this.attempt === 0 && !this.stopped && !this.suspended) {
        this.connectNow();
      }
    });
  }

  // What the caller asks ---------------------------------------------------------

  get position() {
    return this.positions.last;
  }

  close() {
    if (this.stopped) {
      return;
    }
    this.stopped = true;
    this.halt("client closed");
    this.enter("closed", "closed");
  }

  /** @param {string} text */
  send(text) {
    return this.stream !== null && this.stream.send(text);
  }

  suspend() {
    if (this.stopped || this.suspended) {
      return;
    }
    this.suspended = true;
    this.halt("page hidden");
    this.enter("closed", "suspended");
  }

  resume() {
    const busy = this.state === "connecting" || this.state === "live";
    if (this.stopped || this.transport === "none" || (busy && !this.suspended)) {
      return;
    }
    this.suspended = false;
    this.backoff.reset();
    this.connectNow();
  }

  // connecting -------------------------------------------------------------------

  connectNow() {
    this.clearTimers();
    if (this.transport === "none") {
      this.enter("closed", unavailable(this.choice), null, this.urls.ws);
      return;
    }
    const id = ++this.attempt;
    const since = this.positions.last;
    const presence = this.presenceQuery;
    this.attemptUrl =
      this.transport === "websocket"
        ? withQuery(this.urls.ws, { ...(since ? { since } : { positions: "1" }), ...presence })
        : withQuery(this.urls.http, { ...(since ? { lastEventId: since } : {}), ...presence });
    this.enter("connecting");
    this.connectTimer = setTimeout(() => this.timedOut(id), CONNECT_TIMEOUT_MS);
    readToken(this.options.token).then(
      (value) => id === this.attempt && this.open(id, value),
      (err) => id === this.attempt && this.tokenFailed(err),
    );
  }

  /**
   * @param {number} id
   * @param {string} tokenValue
   */
  open(id, tokenValue) {
    const url = tokenValue ? withQuery(this.attemptUrl, { token: tokenValue }) : this.attemptUrl;
    const sink = this.sinkFor(id);
    try {
      this.stream =
        this.transport === "websocket" ? openWebSocket(url, sink) : openEventSource(url, sink);
    } catch (err) {
      // A URL the runtime refuses outright (bad port, blocked scheme).
      this.stream = null;
      this.ended({ code: 1006, reason: String(err), detail: "cannot connect" }, false);
    }
  }

  // What a connection reports, for as long as it is the current attempt.
  /** @param {number} id */
  sinkFor(id) {
    const current = () => id === this.attempt;
    return {
      open: () => current() && this.opened(),
      message: (message) => current() && this.deliver(message),
      presence: (event) => current() && notify(this.options.onPresence, event),
      recovery: (outcome) => current() && this.recovered(outcome),
      end: (info, wasOpen) => {
        if (current()) {
          this.stream = null;
          this.ended(info, wasOpen);
        }
      },
    };
  }

  /** @param {number} id */
  timedOut(id) {
    if (id !== this.attempt) {
      return;
    }
    this.attempt += 1;
    if (this.stream === null) {
      // Still waiting for the token: not the transport's fault.
      this.backOff("timed out waiting for a token");
      return;
    }
    const abandoned = this.stream;
    this.stream = null;
    abandoned.close("connection timed out");
    const detail = "connection timed out";
    this.ended({ code: 1006, reason: detail, detail }, false);
  }

  tokenFailed(err) {
    clearTimeout(this.connectTimer);
    this.attempt += 1;
    this.backOff("could not get a token: " + errorText(err));
  }

  // live -------------------------------------------------------------------------

  opened() {
    clearTimeout(this.connectTimer);
    if (this.transport === "websocket") {
      this.wsEverOpened = true;
      this.wsFailures = 0;
    }
    clearTimeout(this.stableTimer);
    // Only a connection that stays up resets the backoff: one the server
    // closes straight away keeps backing off instead of hammering it.
    this.stableTimer = setTimeout(() => this.backoff.reset(), STABLE_MS);
    this.enter("live");
  }

  /** @param {Message} message */
  deliver(message) {
    const position = parsePosition(message.position);
    if (position !== null && !this.positions.accept(position)) {
      return; // Seen already (replayed twice around a seam): delivered once.
    }
    notify(this.options.onMessage, { ...message, position: position ? message.position : null });
  }

  /** @param {RecoveryOutcome} outcome */
  recovered(outcome) {
    // The server says where to continue from: the last message replayed, or
    // (on a fresh connection, or after a failed recovery) the head of its
    // history. Adopted as is, even in a new epoch, so the next reconnect
    // resumes from it.
    const position = parsePosition(outcome.position);
    if (position !== null) {
      this.positions.adopt(position);
    }
    notify(this.options.onRecovery, outcome);
  }

  // reconnecting -----------------------------------------------------------------

  // The current connection (or attempt) ended by itself.
  ended(info, wasOpen) {
    clearTimeout(this.connectTimer);
    const { code, reason } = info;
    const transport = /** @type {"websocket" | "sse"} */ (this.transport);
    notify(this.options.onClose, { code, reason, label: closeLabel(code), transport });
    if (transport === "websocket" && !wasOpen) {
      this.webSocketFailed(info.detail);
    } else {
      this.backOff(info.detail);
    }
  }

  // A WebSocket attempt failed without opening: retry, or switch to SSE.
  /** @param {string} detail */
  webSocketFailed(detail) {
    this.wsFailures += 1;
    const fallback = this.choice === "auto" && hasEventSource();
    if (fallback && !this.wsEverOpened && this.wsFailures >= WS_FAILURES_BEFORE_SSE) {
      this.transport = "sse";
      this.backoff.reset();
      this.backOff("WebSocket unavailable, switching to server-sent events");
      return;
    }
    this.backOff(detail);
  }

  /** @param {string} detail */
  backOff(detail) {
    this.clearTimers();
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => this.connectNow(), delay);
    this.enter("reconnecting", detail, delay);
  }

  // closed -----------------------------------------------------------------------

  // Stop the current connection (or attempt) and every timer.
  /** @param {string} reason */
  halt(reason) {
    this.attempt += 1;
    this.clearTimers();
    const current = this.stream;
    this.stream = null;
    if (current !== null) {
      current.close(reason);
    }
  }

  // Every state ------------------------------------------------------------------

  /**
   * @param {State} state
   * @param {string} [detail]
   * @param {number | null} [retryIn]
   * @param {string} [url]
   */
  enter(state, detail = "", retryIn = null, url = this.attemptUrl) {
    this.state = state;
    const { transport } = this;
    notify(this.options.onStatus, { state, transport, url, detail, retryIn });
  }

  clearTimers() {
    clearTimeout(this.retryTimer);
    clearTimeout(this.connectTimer);
    clearTimeout(this.stableTimer);
    this.retryTimer = this.connectTimer = this.stableTimer = null;
  }
}

// Transports ----------------------------------------------------------------
//
// Each opens one connection and reports to a sink: open(), message(message),
// recovery(outcome), and end(info, wasOpen) once when the connection ends by
// itself. After close(), it reports nothing more.

function openWebSocket(url, sink) {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  let wasOpen = false;
  let done = false;

  socket.addEventListener("open", () => {
    if (!done) {
      wasOpen = true;
      sink.open();
    }
  });

  socket.addEventListener("message", (event) => {
    if (done) {
      return;
    }
    const frame = readWebSocketFrame(event.data);
    if (frame.outcome) {
      sink.recovery(frame.outcome);
    } else if (frame.presence) {
      sink.presence(frame.presence);
    } else {
      sink.message(frame.message);
    }
  });

  socket.addEventListener("close", (event) => {
    if (!done) {
      done = true;
      const detail = describeWebSocketClose(event.code, event.reason, wasOpen);
      sink.end({ code: event.code, reason: event.reason || "", detail }, wasOpen);
    }
  });

  // A handshake that fails ends the attempt at once. Browsers follow the
  // error with a close (1006), which then finds it ended; Node 20's
  // WebSocket never does, and would wait for the connect timeout.
  socket.addEventListener("error", () => {
    if (!done && !wasOpen) {
      done = true;
      sink.end({ code: 1006, reason: "", detail: closeLabel(1006) }, false);
    }
  });

  return {
    close(reason) {
      if (done) {
        return;
      }
      done = true;
      try {
        socket.close(1000, reason);
      } catch (err) {
        // Already closing: nothing more to do.
      }
    },
    send(text) {
      if (done || socket.readyState !== socket.OPEN) {
        return false;
      }
      socket.send(text);
      return true;
    },
  };
}

// The status text of a WebSocket close: a plain close says nothing, a
// dropped connection just that, anything else its code and reason.
function describeWebSocketClose(code, reason, wasOpen) {
  const label = closeLabel(code);
  let detail = "";
  if (code === 1006) {
    detail = label;
  } else if (code !== 1000 && code !== 1005) {
    detail = label + " (" + code + (reason ? ": " + reason : "") + ")";
  }
  // An attempt that never opened always says why it failed.
  return wasOpen ? detail : detail || label;
}

// One frame of the WebSocket's stream: an envelope, the recovery outcome, or
// (from a server that ignored ?positions=1) a raw payload without position.
function readWebSocketFrame(data) {
  if (data instanceof ArrayBuffer) {
    return { message: { position: null, bytes: new Uint8Array(data) } };
  }
  const parsed = parseJson(data);
  const message = readEnvelope(parsed);
  if (message !== null) {
    return { message };
  }
  const presence = readPresence(parsed);
  if (presence !== null) {
    return { presence };
  }
  if (isObject(parsed) && typeof parsed.recovered === "boolean") {
    return { outcome: readOutcome(parsed) };
  }
  return { message: { position: null, data: String(data) } };
}

// A join or leave ({presence, user, channel}), or null.
function readPresence(parsed) {
  if (
    isObject(parsed) &&
    (parsed.presence === "join" || parsed.presence === "leave") &&
    typeof parsed.user === "string" &&
    typeof parsed.channel === "string"
  ) {
    return { presence: parsed.presence, user: parsed.user, channel: parsed.channel };
  }
  return null;
}

// A message envelope ({position, data | binary, channel?}), or null.
function readEnvelope(parsed) {
  if (!isObject(parsed) || typeof parsed.position !== "string") {
    return null;
  }
  let message = null;
  if (typeof parsed.data === "string") {
    message = { position: parsed.position, data: parsed.data };
  } else if (typeof parsed.binary === "string") {
    message = binaryMessage(parsed.position, parsed.binary);
  } else {
    return null;
  }
  if (typeof parsed.channel === "string") {
    message.channel = parsed.channel;
  }
  return message;
}

// Whether a URL subscribes to a subtree (its path ends with "/"): its
// events then carry the labelled envelope as data.
function isSubtree(url) {
  return new URL(url).pathname.endsWith("/");
}

function openEventSource(url, sink) {
  const source = new EventSource(url);
  const labelled = isSubtree(url);
  let wasOpen = false;
  let done = false;

  // EventSource would reconnect by itself, but with the URL it started
  // from: every reconnect is the client's instead, from the latest position.
  function end(code, reason, detail) {
    done = true;
    source.close();
    sink.end({ code, reason, detail }, wasOpen);
  }

  function on(type, handle) {
    source.addEventListener(type, (event) => {
      if (!done) {
        handle(event);
      }
    });
  }

  on("open", () => {
    wasOpen = true;
    sink.open();
  });
  on("message", (event) => {
    const message = labelled ? readEnvelope(parseJson(event.data)) : null;
    sink.message(message !== null ? message : { position: event.lastEventId, data: event.data });
  });
  on("binary", (event) => sink.message(binaryMessage(event.lastEventId, event.data)));
  on("presence", (event) => {
    const presence = readPresence(parseJson(event.data));
    if (presence !== null) {
      sink.presence(presence);
    }
  });
  on("recovery", (event) => {
    const parsed = parseJson(event.data);
    sink.recovery(
      isObject(parsed)
        ? readOutcome(parsed)
        : { recovered: false, missed: 0, position: null, reason: "unreadable recovery outcome" },
    );
  });
  on("close", (event) => {
    const parsed = parseJson(event.data);
    const info = isObject(parsed) ? parsed : {};
    const code = Number(info.code) || 0;
    const reason = typeof info.reason === "string" ? info.reason : "";
    end(code, reason, closeLabel(code) + " (" + code + (reason ? ": " + reason : "") + ")");
  });
  on("error", () => end(1006, "", "connection lost"));

  return {
    close() {
      if (!done) {
        done = true;
        source.close();
      }
    },
    send() {
      return false;
    },
  };
}

// Positions -----------------------------------------------------------------

// `{epoch, seq}` of a position string, or null. The seq stays a decimal
// string: it may exceed 2^53, so it is compared as a string, never a Number.
function parsePosition(text) {
  const match = typeof text === "string" ? POSITION.exec(text) : null;
  return match ? { epoch: match[1], seq: match[2] } : null;
}

function seqGreater(a, b) {
  const x = a.replace(/^0+(?=\d)/, "");
  const y = b.replace(/^0+(?=\d)/, "");
  return x.length !== y.length ? x.length > y.length : x > y;
}

// The last position seen, and whether a message is past it.
function createPositionTracker(initial) {
  let last = initial;
  return {
    get last() {
      return last === null ? null : last.epoch + ":" + last.seq;
    },
    // Whether `position` is new (a later seq, or another epoch); if so it
    // becomes the last.
    accept(position) {
      if (last !== null && position.epoch === last.epoch && !seqGreater(position.seq, last.seq)) {
        return false;
      }
      last = position;
      return true;
    },
    adopt(position) {
      last = position;
    },
  };
}

// Options and URLs ------------------------------------------------------------

function readSince(since) {
  if (since === undefined || since === null || since === "") {
    return null;
  }
  const position = parsePosition(since);
  if (position === null) {
    throw new TypeError("since must be a position like 1f3a:42, not " + JSON.stringify(since));
  }
  return position;
}

function readTransportChoice(choice) {
  const value = choice === undefined ? "auto" : choice;
  if (!TRANSPORT_CHOICES.includes(value)) {
    throw new TypeError("transport must be one of " + TRANSPORT_CHOICES.join(", "));
  }
  return value;
}

function hasWebSocket() {
  return typeof globalThis.WebSocket === "function";
}

function hasEventSource() {
  return typeof globalThis.EventSource === "function";
}

function initialTransport(choice) {
  if (choice === "sse") {
    return hasEventSource() ? "sse" : "none";
  }
  if (hasWebSocket()) {
    return "websocket";
  }
  return choice === "auto" && hasEventSource() ? "sse" : "none";
}

// The status detail when no transport of the choice exists here.
function unavailable(choice) {
  if (choice === "auto") {
    return "neither WebSocket nor EventSource is available";
  }
  return (choice === "sse" ? "EventSource" : "WebSocket") + " is not available";
}

// The channel's WebSocket and HTTP URLs, from either kind (or a path).
function channelUrls(url) {
  const base = typeof location === "object" && location !== null ? location.href : undefined;
  let parsed;
  try {
    parsed = new URL(url, base);
  } catch (err) {
    throw new TypeError("not a channel URL: " + JSON.stringify(url));
  }
  const secure = parsed.protocol === "https:" || parsed.protocol === "wss:";
  if (!secure && parsed.protocol !== "http:" && parsed.protocol !== "ws:") {
    throw new TypeError("a channel URL is ws:, wss:, http: or https:, not " + parsed.protocol);
  }
  parsed.hash = "";
  const ws = new URL(parsed.href);
  ws.protocol = secure ? "wss:" : "ws:";
  const http = new URL(parsed.href);
  http.protocol = secure ? "https:" : "http:";
  return { ws: ws.href, http: http.href };
}

function withQuery(url, params) {
  const result = new URL(url);
  for (const [name, value] of Object.entries(params)) {
    result.searchParams.set(name, value);
  }
  return result.href;
}

// The token for the next connection, from a value or a provider; "" for none.
function readToken(token) {
  return Promise.resolve()
    .then(() => (typeof token === "function" ? token() : token))
    .then((value) => (value === undefined || value === null ? "" : String(value)));
}

// Small helpers --------------------------------------------------------------

function createBackoff() {
  let current = BACKOFF_START_MS;
  return {
    // Full jitter between half and all of the current backoff, which doubles.
    next() {
      const delay = Math.round(current / 2 + (Math.random() * current) / 2);
      current = Math.min(current * 2, BACKOFF_CAP_MS);
      return delay;
    },
    reset() {
      current = BACKOFF_START_MS;
    },
  };
}

function readOutcome(raw) {
  const outcome = {
    recovered: raw.recovered === true,
    missed: Number(raw.missed) || 0,
    position: typeof raw.position === "string" ? raw.position : null,
  };
  if (typeof raw.reason === "string") {
    outcome.reason = raw.reason;
  }
  return outcome;
}

function binaryMessage(position, base64) {
  return { position, bytes: decodeBase64(base64) };
}

// Base64 to bytes (null if malformed), without atob: the client needs no
// more of its environment than the transports and timers.
function decodeBase64(text) {
  const digits = String(text).replace(/[\t\n\f\r ]/g, "").replace(/={1,2}$/, "");
  if (digits.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(digits)) {
    return null;
  }
  const bytes = new Uint8Array(Math.floor((digits.length * 3) / 4));
  let buffer = 0;
  let bits = 0;
  let length = 0;
  for (let i = 0; i < digits.length; i++) {
    buffer = ((buffer << 6) | sextet(digits.charCodeAt(i))) & 0xffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes[length++] = (buffer >> bits) & 0xff;
    }
  }
  return bytes;
}

// The value of one base64 digit (already checked to be one).
function sextet(code) {
  if (code >= 65 && code <= 90) return code - 65; // A-Z
  if (code >= 97 && code <= 122) return code - 71; // a-z
  if (code >= 48 && code <= 57) return code + 4; // 0-9
  return code === 43 ? 62 : 63; // + or /
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    return null;
  }
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function errorText(err) {
  return err && err.message ? err.message : String(err);
}

// Call a user's callback; what it throws is reported but cannot stop the
// client halfway through a reconnect.
function notify(callback, value) {
  if (typeof callback !== "function") {
    return;
  }
  try {
    callback(value);
  } catch (err) {
    setTimeout(() => {
      throw err;
    }, 0);
  }
}
