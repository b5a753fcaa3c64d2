import { describe, expect, it } from "vitest";
import type { ServerFrame } from "../gen/frames";
import { apply, memoryNote, paragraphs, sending, type TurnView } from "./turns";

const base = { v: 1, org_id: "acme", turn_id: "t1" };
const frames = (...items: object[]) => items as ServerFrame[];

describe("turn reducer", () => {
  it("streams, separates model calls and keeps the authoritative text", () => {
    let turns = [sending("k1", "Book lunch")];
    for (const frame of frames(
      { ...base, type: "turn_started", client_id: "c", conversation_id: "main", idempotency_key: "k1", duplicate: false },
      { ...base, type: "delta", seq: 1, text: "Let me check." },
      { ...base, type: "action_result", seq: 0, action_id: "a1", client_id: "c", tool: "calendar_create", status: "executed", message: "", output: {} },
      { ...base, type: "delta", seq: 2, text: "I booked it." },
    )) turns = apply(turns, frame);
    expect(turns[0].text).toBe("Let me check.\n\nI booked it.");
    expect(paragraphs(turns[0].text)).toEqual(["Let me check.", "I booked it."]);
    expect(turns[0].actionIds).toEqual(["a1"]);
  });

  it("discards partial text on retry and marks a cancelled answer", () => {
    let turns: TurnView[] = [{ ...sending("k1", "x"), turnId: "t1", status: "streaming" }];
    turns = apply(turns, { ...base, type: "delta", seq: 1, text: "partial" } as ServerFrame);
    turns = apply(turns, { ...base, type: "turn_retry", seq: 2, attempt: 2, reason: "redelivered" } as ServerFrame);
    expect(turns[0].text).toBe("");
    turns = apply(turns, { ...base, type: "delta", seq: 3, text: "Half an ans" } as ServerFrame);
    turns = apply(turns, {
      ...base, type: "turn_completed", seq: 4, model: "m", provider: "p", stop_reason: "cancelled",
      usage: { input_tokens: 1, output_tokens: 2, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 }, text: "Half an ans",
    } as ServerFrame);
    expect(turns[0].status).toBe("cancelled");
    expect(turns[0].text).toBe("Half an ans");
  });

  it("adds a turn another tab started, once", () => {
    const observed = { ...base, type: "turn_observed", user_id: "u", client_id: "c", conversation_id: "main", text: "hi", deadline_at: "" } as ServerFrame;
    const turns = apply(apply([], observed), observed);
    expect(turns).toHaveLength(1);
    expect(turns[0].userText).toBe("hi");
  });
});

describe("refused messages", () => {
  it("shows the refusal on the message it answers", () => {
    const turns = apply([sending("k9", "x".repeat(20000))], {
      type: "error", v: 1, org_id: "acme", turn_id: null, seq: 0, code: "message_too_large",
      message: "text over 16384 bytes", retryable: false, idempotency_key: "k9", action_id: null,
    } as ServerFrame);
    expect(turns[0].status).toBe("error");
    expect(turns[0].error?.code).toBe("message_too_large");
  });
});

describe("queued", () => {
  it("says how many answers are ahead until the first text arrives", () => {
    let turns: TurnView[] = [{ ...sending("k1", "x"), turnId: "t1", status: "streaming" }];
    turns = apply(turns, { ...base, type: "queued", seq: 0, position: 2 } as ServerFrame);
    expect(turns[0].queue).toContain("2 ahead");
    turns = apply(turns, { ...base, type: "delta", seq: 1, text: "Hi" } as ServerFrame);
    expect(turns[0].queue).toBeNull();
  });
});

describe("memory", () => {
  it("tells the user when an answer was made without the client's memory", () => {
    expect(memoryNote("skipped:timeout")).toBe("Answered without the client's memory (timeout).");
    expect(memoryNote("used")).toBeNull();
    expect(memoryNote(undefined)).toBeNull();
  });
});
