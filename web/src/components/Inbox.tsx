import { useEffect, useState } from "preact/hooks";
import { actions, clients, decideMany, loadFeed, loadInbox, say, type Action } from "../state";
import { ActionCard } from "./ActionCard";

/** The agency inbox: every pending approval across the user's clients, newest first, and a
 * feed of what ran on its own and of questions the assistant asked. */
export function Inbox() {
  const [ids, setIds] = useState<string[]>([]);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [feed, setFeed] = useState<Action[]>([]);
  const [feedClient, setFeedClient] = useState<string>("");
  const [loading, setLoading] = useState(true);

  async function refresh(): Promise<void> {
    const list = await loadInbox();
    setIds(list.map((a) => a.action_id));
    setLoading(false);
  }
  useEffect(() => {
    void refresh();
    const timer = setInterval(() => void refresh(), 15000);
    return () => clearInterval(timer);
  }, []);
  useEffect(() => {
    void loadFeed(feedClient || null).then(setFeed);
  }, [feedClient]);

  const pending = ids.map((id) => actions.value[id]).filter((a): a is Action => !!a);
  const open = pending.filter((a) => a.status === "pending");

  async function approveSelected(): Promise<void> {
    const failed = await decideMany([...selected]);
    setSelected(new Set());
    if (failed.length) say(`Some were not approved: ${failed.join("; ")}`);
  }

  return (
    <section class="inbox" aria-label="Inbox">
      <div class="row">
        <h2>Waiting for approval ({open.length})</h2>
        <button type="button" class="batch" disabled={selected.size === 0} onClick={() => void approveSelected()}>
          Approve selected ({selected.size})
        </button>
        <button type="button" class="secondary" onClick={() => setSelected(new Set(open.map((a) => a.action_id)))} disabled={open.length === 0}>
          Select all
        </button>
      </div>
      {loading ? <p class="muted">Loading…</p> : pending.length === 0 && <p class="empty">Nothing waits for you.</p>}
      {pending.map((a) => (
        <ActionCard
          key={a.action_id}
          action={a}
          selectable
          selected={selected.has(a.action_id)}
          onSelect={(on) => {
            const next = new Set(selected);
            if (on) next.add(a.action_id);
            else next.delete(a.action_id);
            setSelected(next);
          }}
        />
      ))}
      <div class="row feed-head">
        <h2>Ran on their own, and questions asked</h2>
        <label>
          Client{" "}
          <select value={feedClient} onChange={(e) => setFeedClient(e.currentTarget.value)}>
            <option value="">All clients</option>
            {clients.value.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ul class="feed">
        {feed.length === 0 && <li class="muted">Nothing yet.</li>}
        {feed.map((a) => {
          const client = clients.value.find((c) => c.id === a.client_id);
          return (
            <li key={a.action_id} data-status={a.status}>
              <time dateTime={a.created_at}>{new Date(a.created_at ?? "").toLocaleString()}</time>{" "}
              <strong>{client?.name ?? a.client_id}</strong>{" "}
              {a.status === "needs_input" ? (
                <span>asked for details instead of running {a.tool}</span>
              ) : (
                <span>
                  {a.tool} ran on its own ({a.status}){a.rationale ? `: ${a.rationale}` : ""}
                </span>
              )}
            </li>
          );
        })}
      </ul>
    </section>
  );
}
