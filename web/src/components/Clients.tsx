import { signal } from "@preact/signals";
import { useEffect, useState } from "preact/hooks";
import { api, message, unwrap } from "../lib/api";
import { clientId, clients, loadClients, me, say, selectClient, view } from "../state";
import { Conversations } from "./Conversations";

interface Glance {
  mode: string;
  timezone: string;
  template: string;
}

/** Per client: autonomy mode, time zone and template, fetched once per page load. */
const glances = signal<Record<string, Glance>>({});

async function loadGlances(ids: string[]): Promise<void> {
  const templates = await unwrap(api.GET("/v1/templates")).catch(() => []);
  const names = Object.fromEntries(templates.map((t) => [t.id, t.name]));
  await Promise.all(
    ids.map(async (id) => {
      const resolved = await unwrap(api.GET("/v1/clients/{client_id}/skills/resolved", { params: { path: { client_id: id } } })).catch(() => null);
      const client = clients.value.find((c) => c.id === id);
      glances.value = {
        ...glances.value,
        [id]: {
          mode: resolved?.skills.autonomy.mode ?? "?",
          timezone: resolved?.skills.timezone ?? "",
          template: client?.template_id ? names[client.template_id] ?? client.template_id : "",
        },
      };
    }),
  );
}

export function Clients() {
  const list = clients.value;
  const admin = me.value?.role === "admin";
  useEffect(() => {
    const missing = list.map((c) => c.id).filter((id) => !glances.value[id]);
    if (missing.length) void loadGlances(missing);
  }, [list]);

  function onKey(e: KeyboardEvent): void {
    // Arrow keys move through the list (a roving focus), Enter/Space select.
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const buttons = [...(e.currentTarget as HTMLElement).querySelectorAll<HTMLButtonElement>("button.client")];
    const at = buttons.indexOf(document.activeElement as HTMLButtonElement);
    buttons[Math.max(0, Math.min(buttons.length - 1, at + (e.key === "ArrowDown" ? 1 : -1)))]?.focus();
    e.preventDefault();
  }

  return (
    <aside class="side" aria-label="Clients">
      <h2>Clients</h2>
      <ul class="clients" onKeyDown={onKey}>
        {list.map((c) => {
          const g = glances.value[c.id];
          return (
            <li key={c.id}>
              <button
                type="button"
                class="client"
                data-client={c.id}
                aria-current={c.id === clientId.value ? "true" : undefined}
                onClick={() => void selectClient(c.id)}
              >
                <span class="name">{c.name}</span>
                <span class="glance">
                  {g ? [g.mode, g.timezone, g.template].filter(Boolean).join(" · ") : "…"}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
      {admin && <ClientAdmin />}
      {view.value === "chat" && clientId.value && <Conversations />}
    </aside>
  );
}

function ClientAdmin() {
  const [name, setName] = useState("");
  const [rename, setRename] = useState("");
  const [assignee, setAssignee] = useState("");
  const [users, setUsers] = useState<string[]>([]);
  const current = clientId.value;
  const assigned = clients.value.find((c) => c.id === current)?.assigned_users ?? [];
  // Read when the panel opens: the org's users change (invites) while the page is open.
  function loadUsers(e: Event): void {
    if ((e.currentTarget as HTMLDetailsElement).open) {
      unwrap(api.GET("/v1/users")).then((list) => setUsers(list.map((u) => u.id)), () => undefined);
    }
  }

  async function run(work: () => Promise<unknown>, done: () => void): Promise<void> {
    try {
      await work();
      done();
      await loadClients();
    } catch (e) {
      say(message(e));
    }
  }

  return (
    <details class="admin" onToggle={loadUsers}>
      <summary>Manage clients</summary>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(
            async () => {
              const c = await unwrap(api.POST("/v1/clients", { body: { name } }));
              await selectClient(c.id);
            },
            () => setName(""),
          );
        }}
      >
        <label>
          New client <input value={name} onInput={(e) => setName(e.currentTarget.value)} required maxLength={200} />
        </label>
        <button type="submit">Create</button>
      </form>
      {current && (
        <>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void run(() => unwrap(api.PATCH("/v1/clients/{client_id}", { params: { path: { client_id: current } }, body: { name: rename } })), () => setRename(""));
            }}
          >
            <label>
              Rename selected <input value={rename} onInput={(e) => setRename(e.currentTarget.value)} required maxLength={200} />
            </label>
            <button type="submit">Rename</button>
          </form>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void run(
                () => unwrap(api.POST("/v1/clients/{client_id}/assignees/{user_id}", { params: { path: { client_id: current, user_id: assignee } } })),
                () => setAssignee(""),
              );
            }}
          >
            <label>
              Assign user
              <select value={assignee} onChange={(e) => setAssignee(e.currentTarget.value)} required>
                <option value="">choose…</option>
                {users
                  .filter((u) => !assigned.includes(u))
                  .map((u) => (
                    <option key={u}>{u}</option>
                  ))}
              </select>
            </label>
            <button type="submit">Assign</button>
          </form>
        </>
      )}
    </details>
  );
}
