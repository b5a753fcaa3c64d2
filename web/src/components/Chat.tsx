import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState } from "preact/hooks";
import { describeCode } from "../lib/errors";
import { paragraphs, type TurnView } from "../lib/turns";
import { actions, convKey, currentClient, send, stop, turns } from "../state";
import { ActionCard } from "./ActionCard";

/** One conversation: a virtualised list (only the turns on screen are in the DOM, so 10,000
 * turns scroll as smoothly as ten) and the composer with send and stop. */
export function Chat() {
  const list = turns.value[convKey.value] ?? [];
  const scroller = useRef<HTMLDivElement>(null);
  const stuckToBottom = useRef(true);
  const virtual = useVirtualizer({
    count: list.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 96,
    overscan: 6,
    getItemKey: (i) => list[i].key,
  });

  useEffect(() => {
    if (stuckToBottom.current && list.length) virtual.scrollToIndex(list.length - 1, { align: "end" });
  }, [list, convKey.value]);

  const running = list.find((t) => t.turnId && (t.status === "streaming" || t.status === "sending"));
  return (
    <section class="chat" aria-label={`Conversation with ${currentClient.value?.name ?? ""}`}>
      <div
        class="scroller"
        ref={scroller}
        onScroll={(e) => {
          const el = e.currentTarget;
          stuckToBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        }}
      >
        {list.length === 0 && <p class="empty">No messages yet. Ask the assistant something for {currentClient.value?.name}.</p>}
        <div class="turns" role="log" aria-live="polite" aria-relevant="additions text" style={{ height: `${virtual.getTotalSize()}px` }}>
          {virtual.getVirtualItems().map((item) => (
            <div key={item.key} data-index={item.index} ref={virtual.measureElement} class="slot" style={{ transform: `translateY(${item.start}px)` }}>
              <Turn turn={list[item.index]} />
            </div>
          ))}
        </div>
      </div>
      <Composer running={running ?? null} />
    </section>
  );
}

function Turn({ turn }: { turn: TurnView }) {
  const streaming = turn.status === "streaming" || turn.status === "sending";
  const parts = paragraphs(turn.text);
  return (
    <article class="turn" data-turn={turn.turnId ?? turn.key} data-status={turn.status}>
      <div class="user">
        <div class="bubble">{turn.userText}</div>
      </div>
      <div class={`answer${streaming ? " streaming" : ""}`}>
        {parts.map((p, i) => (
          <p key={i}>{p}</p>
        ))}
        {streaming && parts.length === 0 && <p class="cursor-only" />}
      </div>
      {turn.queue && streaming && <div class="note queued">{turn.queue}</div>}
      {turn.note && streaming && <div class="note">{turn.note}</div>}
      {turn.memory && <div class="note">{turn.memory}</div>}
      {turn.status === "cancelled" && <div class="note stopped">Stopped — the answer above is partial.</div>}
      {turn.error && (
        <div class="error" role="alert">
          {describeCode(turn.error.code, turn.error.message)} <code>{turn.error.code}</code>
        </div>
      )}
      {turn.model && (
        <div class="meta">
          <span class="model">{turn.model}</span>
          {turn.outputTokens !== null && <span> · {turn.outputTokens} out tokens</span>}
        </div>
      )}
      {turn.actionIds.map((id) => {
        const action = actions.value[id];
        return action ? <ActionCard key={id} action={action} /> : null;
      })}
    </article>
  );
}

function Composer({ running }: { running: TurnView | null }) {
  const [text, setText] = useState("");
  function submit(e?: Event): void {
    e?.preventDefault();
    if (!text.trim()) return;
    send(text);
    setText("");
  }
  return (
    <form class="composer" onSubmit={submit}>
      <label class="sr-only" for="message">
        Message
      </label>
      <textarea
        id="message"
        rows={2}
        placeholder={`Message for ${currentClient.value?.name ?? "the client"} (Enter sends, Shift+Enter is a new line)`}
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && !e.shiftKey) submit(e);
        }}
      />
      {running?.turnId ? (
        <button type="button" class="stop" onClick={() => stop(running.turnId!)}>
          Stop
        </button>
      ) : (
        <button type="submit" class="send" disabled={!text.trim()}>
          Send
        </button>
      )}
    </form>
  );
}
