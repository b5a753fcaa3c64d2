import { useState } from "preact/hooks";
import { api, message, unwrap, type Schemas } from "../lib/api";
import { clientId, currentClient, say } from "../state";

type Hit = Schemas["SearchHit"];

/** Search the client's memory (hybrid) and forget an item or everything from one source. */
export function Memory() {
  const [q, setQ] = useState("");
  const [hits, setHits] = useState<Hit[] | null>(null);
  const client = clientId.value!;

  async function search(e?: Event): Promise<void> {
    e?.preventDefault();
    try {
      const found = await unwrap(api.GET("/v1/clients/{client_id}/memory/search", { params: { path: { client_id: client }, query: { q, mode: "hybrid", k: 20 } } }));
      setHits(found.hits);
    } catch (err) {
      say(message(err));
    }
  }

  async function forget(hit: Hit, what: "item" | "source"): Promise<void> {
    if (!confirm(what === "item" ? "Forget this item?" : `Forget everything from ${hit.source}?`)) return;
    try {
      if (what === "item") {
        await unwrap(api.DELETE("/v1/clients/{client_id}/memory/items/{item_id}", { params: { path: { client_id: client, item_id: hit.item_id } } }));
      } else {
        await unwrap(api.DELETE("/v1/clients/{client_id}/memory/sources/{source}", { params: { path: { client_id: client, source: hit.source } } }));
      }
      say("Forgotten.", "info");
      await search();
    } catch (err) {
      say(message(err));
    }
  }

  return (
    <section class="memory" aria-label={`Memory of ${currentClient.value?.name ?? client}`}>
      <form class="row" onSubmit={(e) => void search(e)} role="search">
        <label class="sr-only" for="memq">
          Search memory
        </label>
        <input id="memq" type="search" placeholder="Search what is known about this client" value={q} onInput={(e) => setQ(e.currentTarget.value)} required />
        <button type="submit">Search</button>
      </form>
      {hits !== null && hits.length === 0 && <p class="empty">Nothing found.</p>}
      <ul class="hits">
        {(hits ?? []).map((h) => (
          <li key={h.item_id} class="hit">
            <div class="hit-meta">
              <span class="source">{h.source}</span> · <time dateTime={String(h.occurred_at)}>{new Date(String(h.occurred_at)).toLocaleDateString()}</time>
              {h.title && <strong> · {h.title}</strong>}
            </div>
            <p>{h.text}</p>
            <div class="buttons">
              <button type="button" class="secondary small" onClick={() => void forget(h, "item")}>
                Forget item
              </button>
              <button type="button" class="secondary small" onClick={() => void forget(h, "source")}>
                Forget all from {h.source}
              </button>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
