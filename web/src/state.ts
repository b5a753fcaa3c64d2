// Application state (Preact signals) and the actions that change it. Components read signals
// and call these functions; only this module talks to the API and the socket.
import { computed, signal } from "@preact/signals";
import type { ServerFrame } from "./gen/frames";
import { api, message, unwrap, type Schemas } from "./lib/api";
import type { Me } from "./lib/auth";
import { describeCode } from "./lib/errors";
import { Connection } from "./lib/socket";
import { apply, fromHistory, sending, type TurnView } from "./lib/turns";

export type Client = Schemas["Client"];
export type Action = Schemas["ActionRecord"];
export type Conversation = Schemas["ConversationInfo"];
export type View = "chat" | "inbox" | "memory" | "skills" | "usage";

export const me = signal<Me | null>(null);
export const clients = signal<Client[]>([]);
export const clientId = signal<string | null>(null);
export const conversationId = signal<string>("main");
export const view = signal<View>("chat");
/** Per client, cached: switching back shows them at once while a refresh runs. */
export const conversations = signal<Record<string, Conversation[]>>({});
/** Per `${client}/${conversation}`. */
export const turns = signal<Record<string, TurnView[]>>({});
export const actions = signal<Record<string, Action>>({});
export const notice = signal<{ text: string; kind: "error" | "info" } | null>(null);

export const connection = new Connection();
export const currentClient = computed(() => clients.value.find((c) => c.id === clientId.value) ?? null);
export const convKey = computed(() => `${clientId.value}/${conversationId.value}`);

export function say(text: string, kind: "error" | "info" = "error"): void {
  notice.value = { text, kind };
}

async function attempt<T>(work: () => Promise<T>): Promise<T | undefined> {
  try {
    return await work();
  } catch (error) {
    say(message(error));
    return undefined;
  }
}

// ---- clients and conversations ----

export async function loadClients(): Promise<void> {
  const list = await attempt(() => unwrap(api.GET("/v1/clients")));
  if (!list) return;
  clients.value = list;
  if (clientId.value === null || !list.some((c) => c.id === clientId.value)) {
    const remembered = localStorage.getItem("switchboard.client");
    const first = list.find((c) => c.id === remembered) ?? list[0];
    if (first) void selectClient(first.id);
  }
}

/** Show a client: from the cache at once (its most recent conversation), refreshed behind;
 * the first time, once its conversations are known. */
export async function selectClient(id: string): Promise<void> {
  clientId.value = id;
  localStorage.setItem("switchboard.client", id);
  const cached = conversations.value[id];
  if (cached) {
    void openConversation(cached[0]?.conversation_id ?? "main");
    await refreshConversations(id);
    return;
  }
  conversationId.value = "main";
  await refreshConversations(id);
  if (clientId.value === id) await openConversation(conversations.value[id]?.[0]?.conversation_id ?? "main");
}

export async function refreshConversations(id: string): Promise<void> {
  const page = await attempt(() =>
    unwrap(api.GET("/v1/clients/{client_id}/conversations", { params: { path: { client_id: id }, query: { limit: 200 } } })),
  );
  if (!page) return;
  conversations.value = { ...conversations.value, [id]: page.items };
}

function setTurns(key: string, next: TurnView[]): void {
  turns.value = { ...turns.value, [key]: next };
}

/** Open a conversation: watch it (another tab's turns appear live) and load its history. */
export async function openConversation(id: string): Promise<void> {
  const client = clientId.value;
  if (!client) return;
  conversationId.value = id;
  connection.send({ type: "watch", client_id: client, conversation_id: id });
  const key = `${client}/${id}`;
  const history: TurnView[] = [];
  for (let offset: number | null = 0; offset !== null; ) {
    const { data, response }: { data?: Schemas["Page_TurnRecord_"]; response: Response | null } = await api
      .GET("/v1/clients/{client_id}/conversations/{conversation_id}/turns", {
        params: { path: { client_id: client, conversation_id: id }, query: { offset, limit: 200 } },
      })
      .catch(() => ({ data: undefined, response: null }));
    if (!data) {
      // 404: a new conversation with no turns yet; anything else is shown.
      if (response && response.status !== 404) say(`Could not load the history (${response.status}).`);
      break;
    }
    history.push(...data.items.map(fromHistory));
    offset = data.next_offset ?? null;
  }
  // Keep what streamed meanwhile (a turn not yet stored) after the stored history.
  const stored = new Set(history.map((t) => t.turnId));
  const live = (turns.value[key] ?? []).filter((t) => !stored.has(t.turnId) && t.status !== "done");
  setTurns(key, [...history, ...live]);
}

export function newConversation(): void {
  const id = `c-${Date.now().toString(36)}`;
  const client = clientId.value;
  if (!client) return;
  conversations.value = {
    ...conversations.value,
    [client]: [{ conversation_id: id, last_activity_at: new Date().toISOString(), title: "New conversation" } as Conversation, ...(conversations.value[client] ?? [])],
  };
  void openConversation(id);
}

export async function renameConversation(id: string, title: string): Promise<void> {
  const client = clientId.value;
  if (!client) return;
  const ok = await attempt(() =>
    unwrap(api.PATCH("/v1/clients/{client_id}/conversations/{conversation_id}", {
      params: { path: { client_id: client, conversation_id: id } },
      body: { title },
    })),
  );
  if (ok) await refreshConversations(client);
}

// ---- chat ----

export function send(text: string): void {
  const client = clientId.value;
  if (!client || !text.trim()) return;
  const key = crypto.randomUUID().replace(/-/g, "");
  setTurns(convKey.value, [...(turns.value[convKey.value] ?? []), sending(key, text)]);
  connection.send({ type: "user_message", client_id: client, conversation_id: conversationId.value, text, idempotency_key: key });
}

export function stop(turnId: string): void {
  connection.send({ type: "cancel", turn_id: turnId });
}

function onFrame(frame: ServerFrame): void {
  if (frame.type === "action_pending") {
    const known = actions.value[frame.action_id];
    actions.value = {
      ...actions.value,
      [frame.action_id]: {
        ...(known ?? {}), action_id: frame.action_id, org_id: frame.org_id, turn_id: frame.turn_id, client_id: frame.client_id,
        tool: frame.tool, arguments: frame.arguments, confidence: frame.confidence, rationale: frame.rationale,
        risky: frame.risky, expires_at: frame.expires_at, status: "pending",
      } as Action,
    };
  } else if (frame.type === "action_result" || frame.type === "action_decided") {
    const known = actions.value[frame.action_id];
    if (known) actions.value = { ...actions.value, [frame.action_id]: { ...known, status: frame.status, output: frame.output } };
  } else if (frame.type === "error" && !frame.turn_id && !frame.idempotency_key) {
    say(describeCode(frame.code, frame.message));
  }
  if (frame.type === "turn_completed" && clientId.value) void refreshConversations(clientId.value);
  // A frame belongs to at most one conversation: apply it where it changes something.
  const all = turns.value;
  for (const key of Object.keys(all)) {
    const next = apply(all[key], frame);
    if (next !== all[key]) {
      setTurns(key, next);
      return;
    }
  }
}
connection.on(onFrame);

// ---- approvals ----

export async function loadInbox(): Promise<Action[]> {
  const list = await attempt(() => unwrap(api.GET("/v1/inbox", { params: { query: { kind: "pending" } } })));
  if (!list) return [];
  const next = { ...actions.value };
  for (const a of list) next[a.action_id] = a;
  actions.value = next;
  return list;
}

export async function loadFeed(client: string | null): Promise<Action[]> {
  const query = client ? { kind: "feed" as const, client_id: client } : { kind: "feed" as const };
  return (await attempt(() => unwrap(api.GET("/v1/inbox", { params: { query } })))) ?? [];
}

export async function decide(actionId: string, approve: boolean, args?: Record<string, unknown>): Promise<string | null> {
  try {
    const record = await unwrap(
      api.POST("/v1/actions/{action_id}/decision", {
        params: { path: { action_id: actionId } },
        body: { decision: approve ? "approve" : "reject", arguments: args ?? null, reason: "" },
      }),
    );
    actions.value = { ...actions.value, [actionId]: record };
    return null;
  } catch (error) {
    return message(error);
  }
}

export async function decideMany(ids: string[]): Promise<string[]> {
  const outcomes = await attempt(() =>
    unwrap(api.POST("/v1/actions/decisions", { body: { decisions: ids.map((action_id) => ({ action_id, decision: "approve" as const, reason: "" })) } })),
  );
  if (!outcomes) return [];
  const next = { ...actions.value };
  const failed: string[] = [];
  for (const outcome of outcomes) {
    if (outcome.record) next[outcome.action_id] = outcome.record;
    if (!outcome.ok) failed.push(`${outcome.action_id.slice(0, 8)}: ${outcome.message}`);
  }
  actions.value = next;
  return failed;
}
