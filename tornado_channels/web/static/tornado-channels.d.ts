/**
 * The human label of a WebSocket close code.
 *
 * @param {number} code a close code, e.g. 1001
 * @returns {string} e.g. "server restarting"; "closed" for an unknown code
 */
export function closeLabel(code: number): string;
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
export function connect(url: string, options?: ConnectOptions): Client;
/**
 * What each WebSocket close code means, as short human text. Codes missing
 * here read as "closed" (see {@link closeLabel}).
 *
 * @type {Readonly<Record<number, string>>}
 */
export const CLOSE_LABELS: Readonly<Record<number, string>>;
/**
 * `<epoch>:<seq>`: where a message sits in its channel's history (the epoch
 * in hex, the seq in decimal, as the server writes them).
 */
export type Position = string;
/**
 * A text message, exactly as published.
 */
export type TextMessage = {
    /**
     * where the message sits in the
     * channel, or null when the server gave none
     */
    position: Position | null;
    /**
     * the text, exactly as published
     */
    data: string;
    /**
     * where it was published (`users/2/inbox`, or a
     * subtree such as `users/`): set for subscriptions to a subtree (`/users/`)
     */
    channel?: string;
};
/**
 * A message whose bytes are not UTF-8.
 */
export type BinaryMessage = {
    /**
     * as for {@link TextMessage}
     */
    position: Position | null;
    /**
     * the bytes as published, or null when
     * the server's base64 could not be decoded
     */
    bytes: Uint8Array | null;
    /**
     * as for {@link TextMessage}
     */
    channel?: string;
};
/**
 * One published message: `"data" in message` tells text from bytes.
 */
export type Message = TextMessage | BinaryMessage;
/**
 * The server's answer to a (re)connect: whether everything missed was replayed.
 */
export type RecoveryOutcome = {
    /**
     * true if every missed message was replayed
     */
    recovered: boolean;
    /**
     * how many messages were replayed
     */
    missed: number;
    /**
     * where the stream continues from
     * (adopted as the client's position); null if the server sent none
     */
    position: Position | null;
    /**
     * why nothing could be recovered (when not recovered)
     */
    reason?: string;
};
/**
 * Where a client is: connecting (an attempt under way), live (connected),
 * reconnecting (waiting out a backoff), closed (close(), suspend(), or no
 * transport available here).
 */
export type State = "connecting" | "live" | "reconnecting" | "closed";
/**
 * The transport in use; "none" when neither of the choice exists here.
 */
export type TransportName = "websocket" | "sse" | "none";
/**
 * Which transports a client may use: "auto" is WebSocket, with server-sent
 * events as the fallback.
 */
export type TransportChoice = "auto" | "websocket" | "sse";
/**
 * What onStatus is told on every change of state.
 */
export type Status = {
    /**
     * the state entered
     */
    state: State;
    /**
     * the transport in use, or of the next attempt
     */
    transport: TransportName;
    /**
     * the stream's URL (without the token), of the current
     * or last attempt
     */
    url: string;
    /**
     * human text on what happened ("" when nothing to say),
     * e.g. "server restarting (1001: shutting down)"
     */
    detail: string;
    /**
     * ms until the next attempt (when
     * reconnecting), else null
     */
    retryIn: number | null;
};
/**
 * How one connection ended.
 */
export type CloseInfo = {
    /**
     * the WebSocket close code (a stream that drops or an
     * attempt that times out reads as 1006, as a browser reports it)
     */
    code: number;
    /**
     * the server's reason, or "" when none
     */
    reason: string;
    /**
     * {@link closeLabel} of the code
     */
    label: string;
    /**
     * the transport of that connection
     */
    transport: "websocket" | "sse";
};
/**
 * A user's first subscription to a channel on the whole deployment, or
 * their last one gone.
 */
export type PresenceEvent = {
    /**
     * what happened
     */
    presence: "join" | "leave";
    /**
     * who (a token's `sub`)
     */
    user: string;
    /**
     * where (a channel, or a subtree such as `users/`)
     */
    channel: string;
};
/**
 * A token; null, undefined or "" for none.
 */
export type TokenValue = string | null | undefined;
/**
 * A token, or a provider called before every (re)connect (e.g. to renew an
 * expiring one).
 */
export type TokenOption = TokenValue | (() => TokenValue | Promise<TokenValue>);
/**
 * What connect() accepts besides the URL; every option may be left out.
 */
export type ConnectOptions = {
    /**
     * a position to resume from
     */
    since?: Position;
    /**
     * "auto" (the default):
     * WebSocket, with server-sent events as the fallback; or only one of them
     */
    transport?: TransportChoice;
    /**
     * sent as `?token=` on every connection; a
     * function is called before every (re)connect. null, undefined or "" send none
     */
    token?: TokenOption;
    /**
     * once per message,
     * never twice for the same position
     */
    onMessage?: (message: Message) => void;
    /**
     * joins and leaves:
     * with it, the client asks for them (`?presence=1`), and is told each time a
     * user's first subscription to the channel appears on the whole deployment
     * or their last one goes (users are tokens' `sub`)
     */
    onPresence?: (event: PresenceEvent) => void;
    /**
     * each time a
     * connection reports its recovery outcome: first thing on a fresh
     * connection, right after the replay on a resumed one
     */
    onRecovery?: (outcome: RecoveryOutcome) => void;
    /**
     * on every change of state
     */
    onStatus?: (status: Status) => void;
    /**
     * every time a connection or
     * attempt ends without close() or suspend() having asked for it
     */
    onClose?: (info: CloseInfo) => void;
};
/**
 * What a client reports about itself: read-only views of its progress.
 */
export type ClientView = {
    /**
     * the last position seen
     */
    position: Position | null;
    /**
     * the current transport
     */
    transport: TransportName;
    /**
     * the current state
     */
    state: State;
};
/**
 * What a client can be asked to do.
 */
export type ClientControls = {
    /**
     * stop for good: close the connection, never reconnect
     */
    close: () => void;
    /**
     * send over the open WebSocket;
     * false when not connected over a WebSocket (publish by HTTP POST then)
     */
    send: (text: string) => boolean;
    /**
     * close the connection now and do not
     * reconnect until resume() (e.g. on pagehide)
     */
    suspend: () => void;
    /**
     * reconnect now, from the last position, when
     * suspended or waiting to reconnect (e.g. on pageshow, online)
     */
    resume: () => void;
};
/**
 * A subscription that stays subscribed, as connect() returns it. Its
 * methods need no `this`: `addEventListener("pagehide", client.suspend)`
 * works.
 */
export type Client = ClientControls & Readonly<ClientView>;
