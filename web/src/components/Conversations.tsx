import { useState } from "preact/hooks";
import { clientId, conversationId, conversations, newConversation, openConversation, renameConversation } from "../state";

export function Conversations() {
  const list = conversations.value[clientId.value ?? ""] ?? [];
  const [editing, setEditing] = useState<string | null>(null);
  const [title, setTitle] = useState("");
  const current = conversationId.value;
  const shown = list.some((c) => c.conversation_id === current) ? list : [{ conversation_id: current, title: "", last_activity_at: "" }, ...list];

  return (
    <section class="convs" aria-label="Conversations">
      <div class="row">
        <h2>Conversations</h2>
        <button type="button" class="small" onClick={newConversation}>
          New
        </button>
      </div>
      <ul>
        {shown.map((c) => (
          <li key={c.conversation_id}>
            {editing === c.conversation_id ? (
              <form
                onSubmit={(e) => {
                  e.preventDefault();
                  setEditing(null);
                  void renameConversation(c.conversation_id, title);
                }}
              >
                <input aria-label="Conversation title" value={title} onInput={(e) => setTitle(e.currentTarget.value)} maxLength={200} required autoFocus />
              </form>
            ) : (
              <>
                <button
                  type="button"
                  class="conv"
                  data-conversation={c.conversation_id}
                  aria-current={c.conversation_id === current ? "true" : undefined}
                  onClick={() => void openConversation(c.conversation_id)}
                >
                  {c.title || (c.conversation_id === "main" ? "Main" : c.conversation_id)}
                </button>
                <button
                  type="button"
                  class="link small"
                  aria-label={`Rename ${c.title || c.conversation_id}`}
                  onClick={() => {
                    setTitle(c.title ?? "");
                    setEditing(c.conversation_id);
                  }}
                >
                  ✎
                </button>
              </>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
