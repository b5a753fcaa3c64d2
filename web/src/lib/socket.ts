// One WebSocket per page, kept open: reconnects on its own with backoff, then re-sends what
// the server must know again (the watched conversation, a `resume` from the last seq of every
// unfinished turn) and what was sent while offline (user messages carry idempotency keys, so
// a re-send never makes a second turn).
import { signal } from "@preact/signals";
import type { ClientFrame, ServerFrame } from "../gen/frames";
import { AuthError, socketUrl } from "./auth";

export type SocketState = "connecting" | "connected" | "reconnecting" | "signed-out";
type Listener = (frame: ServerFrame) => void;

const MAX_BACKOFF_MS = 8000;
const TERMINAL = new Set(["turn_completed", "error"]);

export class Connection {
  readonly state = signal<SocketState>("connecting");
  private ws: WebSocket | null = null;
  private listeners = new Set<Listener>();
  private outbox: ClientFrame[] = [];
  private lastSeq = new Map<string, number>();
  private watching: ClientFrame | null = null;
  private attempts = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor() {
    addEventListener("online", () => this.reconnectNow());
    // A socket can look open for a long while after the network went away: drop it at once
    // so the page says so, and reconnect (then resume) as soon as the network is back.
    addEventListener("offline", () => this.drop());
  }

  on(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async open(): Promise<void> {
    this.closed = false;
    clearTimeout(this.timer);
    let url: string;
    try {
      url = await socketUrl();
    } catch (error) {
      if (error instanceof AuthError) {
        this.state.value = "signed-out";
        return;
      }
      this.retryLater();
      return;
    }
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.state.value = "connected";
      if (this.watching) ws.send(JSON.stringify(this.watching));
      for (const [turnId, lastSeq] of this.lastSeq) {
        ws.send(JSON.stringify({ type: "resume", turn_id: turnId, last_seq: lastSeq }));
      }
      const pending = this.outbox;
      this.outbox = [];
      for (const frame of pending) ws.send(JSON.stringify(frame));
    };
    ws.onmessage = (event) => this.receive(String(event.data));
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.closed) this.retryLater();
    };
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close();
    this.ws = null;
  }

  send(frame: ClientFrame): void {
    if (frame.type === "watch") this.watching = frame;
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
    else if (frame.type !== "watch") this.outbox.push(frame);
  }

  /** Follow a turn (its events resume from `lastSeq` after a reconnect). */
  follow(turnId: string, lastSeq = 0): void {
    if (!this.lastSeq.has(turnId)) this.lastSeq.set(turnId, lastSeq);
  }

  private receive(raw: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(raw) as ServerFrame;
    } catch {
      return;
    }
    const turnId = "turn_id" in frame ? frame.turn_id : null;
    if (turnId) {
      if (frame.type === "turn_started" || frame.type === "turn_observed") this.follow(turnId);
      const seq = "seq" in frame && typeof frame.seq === "number" ? frame.seq : 0;
      const known = this.lastSeq.get(turnId);
      if (known !== undefined && seq > known) this.lastSeq.set(turnId, seq);
      if (TERMINAL.has(frame.type ?? "") && !("action_id" in frame && frame.action_id)) this.lastSeq.delete(turnId);
    }
    for (const listener of this.listeners) listener(frame);
  }

  /** Forget the current socket without waiting for its closing handshake (which cannot
   * complete without a network), and start reconnecting. */
  private drop(): void {
    const ws = this.ws;
    if (ws === null || this.closed) return;
    this.ws = null;
    ws.onmessage = null;
    ws.close();
    this.retryLater();
  }

  private retryLater(): void {
    this.state.value = "reconnecting";
    // Exponential with jitter, so a gateway restart is not met by every tab at once.
    const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.attempts) * (0.75 + Math.random() / 2);
    this.attempts += 1;
    this.timer = setTimeout(() => void this.open(), delay);
  }

  private reconnectNow(): void {
    if (this.state.value === "reconnecting") {
      this.attempts = 0;
      void this.open();
    }
  }
}
