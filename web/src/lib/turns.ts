// What a conversation shows, as a pure function of history and stream frames (unit-tested in
// turns.test.ts). Each frame is applied once; the server guarantees seq order per turn.
import type { ServerFrame } from "../gen/frames";
import type { Schemas } from "./api";

export type TurnStatus = "sending" | "streaming" | "done" | "cancelled" | "error";

export interface TurnView {
  /** Local key until the server names the turn (the message's idempotency key). */
  key: string;
  turnId: string | null;
  userText: string;
  text: string;
  status: TurnStatus;
  model: string | null;
  outputTokens: number | null;
  note: string | null;
  /** Waiting for the model (a `queued` frame) until the first text arrives. */
  queue: string | null;
  error: { code: string; message: string } | null;
  /** Set when the turn went on without the client's memory (the search timed out or failed). */
  memory: string | null;
  actionIds: string[];
  /** An action frame arrived: the next text comes from another model call (new paragraph). */
  breakBeforeNext: boolean;
}

/** What to tell the user about memory: only when the answer was made without it. */
export function memoryNote(status: string | undefined): string | null {
  if (!status || !status.startsWith("skipped")) return null;
  return `Answered without the client's memory (${status.slice("skipped:".length) || "skipped"}).`;
}

export function fromHistory(record: Schemas["TurnRecord"]): TurnView {
  return {
    key: record.turn_id,
    turnId: record.turn_id,
    userText: record.user_text,
    text: record.assistant_text,
    status: record.stop_reason === "cancelled" ? "cancelled" : "done",
    model: record.model,
    outputTokens: record.usage.output_tokens,
    note: null,
    queue: null,
    error: record.error ? { code: record.error, message: record.assistant_text } : null,
    memory: memoryNote(record.meta?.memory),
    actionIds: [],
    breakBeforeNext: false,
  };
}

export function sending(key: string, userText: string): TurnView {
  return {
    key, turnId: null, userText, text: "", status: "sending", model: null, outputTokens: null,
    note: null, queue: null, error: null, memory: null, actionIds: [], breakBeforeNext: false,
  };
}

/** Paragraphs to render: separate model calls of one turn are separated by a blank line. */
export function paragraphs(text: string): string[] {
  return text.split(/\n{2,}/).filter((p) => p.length > 0);
}

function update(turns: TurnView[], index: number, change: Partial<TurnView>): TurnView[] {
  const next = turns.slice();
  next[index] = { ...turns[index], ...change };
  return next;
}

/** The turns after one frame (the same array when the frame is not about these turns). */
export function apply(turns: TurnView[], frame: ServerFrame): TurnView[] {
  if (frame.type === "turn_started") {
    const i = turns.findIndex((t) => t.key === frame.idempotency_key || t.turnId === frame.turn_id);
    if (i < 0) return turns;
    return update(turns, i, { turnId: frame.turn_id, status: turns[i].status === "sending" ? "streaming" : turns[i].status });
  }
  if (frame.type === "turn_observed") {
    if (turns.some((t) => t.turnId === frame.turn_id)) return turns;
    return [...turns, { ...sending(frame.turn_id, frame.text), turnId: frame.turn_id, status: "streaming" }];
  }
  if (frame.type === "error" && !frame.turn_id && frame.idempotency_key) {
    // Refused before it became a turn (too large, rate limited, forbidden client...).
    const i = turns.findIndex((t) => t.key === frame.idempotency_key);
    return i < 0 ? turns : update(turns, i, { status: "error", error: { code: frame.code, message: frame.message } });
  }
  if (!("turn_id" in frame) || !frame.turn_id) return turns;
  const i = turns.findIndex((t) => t.turnId === frame.turn_id);
  if (i < 0) return turns;
  const turn = turns[i];
  switch (frame.type) {
    case "delta": {
      const gap = turn.breakBeforeNext && turn.text && !turn.text.endsWith("\n\n") ? "\n\n" : "";
      return update(turns, i, { text: turn.text + gap + frame.text, status: "streaming", breakBeforeNext: false, queue: null });
    }
    case "queued":
      return update(turns, i, {
        queue: frame.position > 0 ? `Waiting for the model: ${frame.position} ahead of this answer…` : "Waiting for the model…",
      });
    case "turn_retry":
      return update(turns, i, { text: "", note: "The answer is being generated again (retrying)…", breakBeforeNext: false });
    case "turn_completed":
      return update(turns, i, {
        text: frame.text || turn.text,
        status: frame.stop_reason === "cancelled" ? "cancelled" : "done",
        model: frame.model,
        outputTokens: frame.usage.output_tokens,
        note: null,
        memory: memoryNote(frame.meta?.memory),
      });
    case "error":
      if (frame.action_id) return turns;
      return update(turns, i, { status: "error", error: { code: frame.code, message: frame.message } });
    case "action_pending":
    case "action_result":
    case "action_decided":
      return update(turns, i, {
        actionIds: turn.actionIds.includes(frame.action_id) ? turn.actionIds : [...turn.actionIds, frame.action_id],
        breakBeforeNext: turn.status === "streaming" || turn.status === "sending",
      });
    default:
      return turns;
  }
}
