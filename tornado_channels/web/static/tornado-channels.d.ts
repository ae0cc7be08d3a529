/**
 * Types of `tornado-channels.js`: a client for one channel (or subtree) of a
 * tornado_channels server, over WebSocket with server-sent events as the
 * fallback, resumed losslessly from the last position after every drop.
 */

/** `<epoch>:<seq>`: where a message sits in its channel's history. */
export type Position = string;

/** A text message, exactly as published. */
export interface TextMessage {
  /** Where the message sits, or null when the server gave none. */
  position: Position | null;
  /** The text, exactly as published. */
  data: string;
  /** Where it was published (`users/2/inbox`, or a subtree such as `users/`): on a subtree's subscription. */
  channel?: string;
}

/** A message whose bytes are not UTF-8. */
export interface BinaryMessage {
  position: Position | null;
  /** The bytes as published, or null when the server's base64 could not be decoded. */
  bytes: Uint8Array | null;
  /** As for {@link TextMessage}. */
  channel?: string;
}

export type Message = TextMessage | BinaryMessage;

/** The server's answer to a (re)connect: whether everything missed was replayed. */
export interface RecoveryOutcome {
  /** True if every missed message was replayed. */
  recovered: boolean;
  /** How many messages were replayed. */
  missed: number;
  /** Where the stream continues from (adopted as the client's position). */
  position: Position | null;
  /** Why nothing could be recovered (when not recovered). */
  reason?: string;
}

export type State = "connecting" | "live" | "reconnecting" | "closed";

export type TransportName = "websocket" | "sse" | "none";

export type TransportChoice = "auto" | "websocket" | "sse";

export interface Status {
  state: State;
  /** The transport in use, or of the next attempt. */
  transport: TransportName;
  /** The stream's URL (without the token) of the current or last attempt. */
  url: string;
  /** Human text on what happened ("" when nothing to say). */
  detail: string;
  /** Milliseconds until the next attempt (when reconnecting), else null. */
  retryIn: number | null;
}

/** How one connection ended. */
export interface CloseInfo {
  /** The WebSocket close code (a dropped stream or a timed-out attempt reads as 1006). */
  code: number;
  reason: string;
  /** {@link closeLabel} of the code. */
  label: string;
  transport: "websocket" | "sse";
}

export type TokenValue = string | null | undefined;

/** A token, or a provider called before every (re)connect (e.g. to renew an expiring one). */
export type TokenOption = TokenValue | (() => TokenValue | Promise<TokenValue>);

/** A user's first subscription to a channel on the deployment, or their last one gone. */
export interface PresenceEvent {
  presence: "join" | "leave";
  /** A token's `sub`. */
  user: string;
  /** A channel, or a subtree such as `users/`. */
  channel: string;
}

export interface ConnectOptions {
  /** A position to resume from. */
  since?: Position;
  /** "auto" (the default): WebSocket, with server-sent events as the fallback. */
  transport?: TransportChoice;
  /** Sent as `?token=` on every connection; a function is called before each. */
  token?: TokenOption;
  /** Once per message, never twice for the same position. */
  onMessage?: (message: Message) => void;
  /** Joins and leaves: with it the client asks for them (`?presence=1`). */
  onPresence?: (event: PresenceEvent) => void;
  /** Each time a connection reports its recovery outcome. */
  onRecovery?: (outcome: RecoveryOutcome) => void;
  /** On every change of state. */
  onStatus?: (status: Status) => void;
  /** Every time a connection or attempt ends without close() or suspend(). */
  onClose?: (info: CloseInfo) => void;
}

export interface Client {
  /** Stop for good: close the connection, never reconnect. */
  close(): void;
  /** Send over the open WebSocket; false when not connected over one. */
  send(text: string): boolean;
  /** Close the connection now and do not reconnect until resume(). */
  suspend(): void;
  /** Reconnect now, from the last position, when suspended or waiting to reconnect. */
  resume(): void;
  /** The last position seen. */
  readonly position: Position | null;
  /** The current transport. */
  readonly transport: TransportName;
  /** The current state. */
  readonly state: State;
}

/** What each WebSocket close code means, as short human text. */
export declare const CLOSE_LABELS: Readonly<Record<number, string>>;

/** The human label of a close code ("closed" for an unknown one). */
export declare function closeLabel(code: number): string;

/**
 * Subscribe to one channel and stay subscribed: reconnect with capped,
 * jittered backoff and resume from the last position after every drop, until
 * close().
 *
 * @param url `ws://`, `wss://`, `http://` or `https://`, or a path such as "/users/1"
 * @throws TypeError for a URL that is not a channel's, an unknown transport, or a bad `since`
 */
export declare function connect(url: string, options?: ConnectOptions): Client;
