import { useEffect, useState } from "preact/hooks";
import { api, message, unwrap, type Schemas } from "../lib/api";
import { clientId, currentClient, me, say } from "../state";

type Layer = Record<string, unknown>;
type Tier = "system" | "user" | "template" | "client";
const TIERS: Tier[] = ["system", "user", "template", "client"];

function leaves(doc: unknown, prefix = ""): Record<string, unknown> {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc) || Object.keys(doc).length === 0) return prefix ? { [prefix]: doc } : {};
  return Object.entries(doc as Layer).reduce((out, [k, v]) => ({ ...out, ...leaves(v, prefix ? `${prefix}.${k}` : k) }), {} as Record<string, unknown>);
}

function show(value: unknown): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** The four tiers side by side, the value the assistant uses and which tier set it; each tier
 * editable (as JSON) by those allowed to. */
export function Skills() {
  const client = clientId.value!;
  const who = me.value!;
  const [layers, setLayers] = useState<Partial<Record<Tier, Layer>>>({});
  const [templateName, setTemplateName] = useState<string>("");
  const [resolved, setResolved] = useState<{ values: Record<string, unknown>; provenance: Record<string, string>; skills: Schemas["Skills"] } | null>(null);
  const [editing, setEditing] = useState<Tier | null>(null);
  const [draft, setDraft] = useState("");

  async function load(): Promise<void> {
    try {
      const c = await unwrap(api.GET("/v1/clients/{client_id}", { params: { path: { client_id: client } } }));
      const [system, user, own, res] = await Promise.all([
        unwrap(api.GET("/v1/skills/system")),
        unwrap(api.GET("/v1/skills/users/{user_id}", { params: { path: { user_id: who.user } } })),
        unwrap(api.GET("/v1/clients/{client_id}/skills", { params: { path: { client_id: client } } })),
        unwrap(api.GET("/v1/clients/{client_id}/skills/resolved", { params: { path: { client_id: client } } })),
      ]);
      let template: Layer = {};
      if (c.template_id) {
        const t = await unwrap(api.GET("/v1/templates/{template_id}", { params: { path: { template_id: c.template_id } } }));
        template = t.skills as Layer;
        setTemplateName(t.name);
      } else setTemplateName("");
      setLayers({ system: system.skills, user: user.skills, template, client: own.skills });
      setResolved({ values: leaves(res.skills), provenance: res.provenance, skills: res.skills });
    } catch (err) {
      say(message(err));
    }
  }
  useEffect(() => {
    void load();
  }, [client]);

  const canEdit = (tier: Tier) => tier === "client" || tier === "user" || who.role === "admin";
  async function save(tier: Tier): Promise<void> {
    let body: Layer;
    try {
      body = JSON.parse(draft || "{}") as Layer;
    } catch {
      say("That is not valid JSON.");
      return;
    }
    await saveLayer(tier, body);
  }

  async function saveLayer(tier: Tier, body: Layer): Promise<void> {
    try {
      if (tier === "client") await unwrap(api.PUT("/v1/clients/{client_id}/skills", { params: { path: { client_id: client } }, body }));
      else if (tier === "user") await unwrap(api.PUT("/v1/skills/users/{user_id}", { params: { path: { user_id: who.user } }, body }));
      else if (tier === "system") await unwrap(api.PUT("/v1/skills/system", { body }));
      else {
        const c = currentClient.value;
        if (!c?.template_id) return say("This client has no template.");
        await unwrap(api.PATCH("/v1/templates/{template_id}", { params: { path: { template_id: c.template_id } }, body: { skills: body } }));
      }
      setEditing(null);
      say("Saved.", "info");
      await load();
    } catch (err) {
      say(message(err));
    }
  }

  const flat = Object.fromEntries(TIERS.map((t) => [t, leaves(layers[t] ?? {})]));
  const label = (t: Tier) => (t === "template" && templateName ? `template ${templateName}` : t);
  return (
    <section class="skills" aria-label="Skills">
      <table>
        <caption>What the assistant uses for {currentClient.value?.name}, and which tier set it</caption>
        <thead>
          <tr>
            <th scope="col">Setting</th>
            {TIERS.map((t) => (
              <th scope="col" key={t}>
                {label(t)}
                {canEdit(t) && (t !== "template" || templateName) && (
                  <button type="button" class="link small" aria-label={`Edit the ${t} tier`} onClick={() => { setDraft(JSON.stringify(layers[t] ?? {}, null, 2)); setEditing(t); }}>
                    ✎
                  </button>
                )}
              </th>
            ))}
            <th scope="col">In effect</th>
          </tr>
        </thead>
        <tbody>
          {Object.entries(resolved?.values ?? {}).map(([path, value]) => {
            const tier = resolved?.provenance[path] ?? "system";
            return (
              <tr key={path}>
                <th scope="row">{path}</th>
                {TIERS.map((t) => (
                  <td key={t} class={t === tier ? "wins" : ""}>
                    {/* The system column shows the built-in default where the org set none. */}
                    {show(flat[t][path] ?? (t === "system" && tier === "system" ? value : undefined))}
                  </td>
                ))}
                <td>
                  {show(value)} <small class="muted">set by {label(tier as Tier)}</small>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {resolved && (
        <AutonomyForm
          key={JSON.stringify(resolved.skills.autonomy)}
          skills={resolved.skills}
          onSave={(autonomy) => {
            const own = (layers.client ?? {}) as Layer;
            void saveLayer("client", { ...own, autonomy: { ...((own.autonomy as Layer) ?? {}), ...autonomy } });
          }}
        />
      )}
      {editing && (
        <form class="tier-edit" onSubmit={(e) => { e.preventDefault(); void save(editing); }}>
          <label for="tier-json">The {label(editing)} tier (JSON; null removes what an earlier tier set)</label>
          <textarea id="tier-json" rows={10} value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
          <div class="buttons">
            <button type="submit">Save</button>
            <button type="button" class="secondary" onClick={() => setEditing(null)}>Cancel</button>
          </div>
        </form>
      )}
    </section>
  );
}

type Autonomy = Schemas["Skills"]["autonomy"];
const TOOLS = ["calendar_create", "calendar_delete", "email_draft", "email_send", "task_add", "task_complete"];

/** The client's autonomy at a glance and editable: the mode, and per action type the
 * confidence above which it runs alone and below which the assistant asks instead. Saved into
 * the client tier (other tiers stay as they are). */
function AutonomyForm({ skills, onSave }: { skills: Schemas["Skills"]; onSave: (autonomy: Partial<Autonomy>) => void }) {
  const auto = skills.autonomy;
  const [mode, setMode] = useState(auto.mode);
  const [rows, setRows] = useState<Record<string, { auto_execute: string; require_approval: string }>>(() =>
    Object.fromEntries(
      TOOLS.map((t) => {
        const th = auto.actions?.[t] ?? auto.default;
        return [t, { auto_execute: String(th.auto_execute), require_approval: String(th.require_approval) }];
      }),
    ),
  );
  function submit(e: Event): void {
    e.preventDefault();
    const actions: Record<string, { auto_execute: number; require_approval: number }> = {};
    for (const [tool, row] of Object.entries(rows)) {
      const th = { auto_execute: Number(row.auto_execute), require_approval: Number(row.require_approval) };
      const base = auto.actions?.[tool] ?? auto.default;
      if (th.auto_execute !== base.auto_execute || th.require_approval !== base.require_approval || auto.actions?.[tool]) actions[tool] = th;
    }
    onSave({ mode, actions });
  }
  return (
    <form class="autonomy" onSubmit={submit} aria-label="Autonomy">
      <h3>Autonomy</h3>
      <label>
        Mode{" "}
        <select name="mode" value={mode} onChange={(e) => setMode(e.currentTarget.value as Autonomy["mode"])}>
          <option value="suggest">suggest: never run alone</option>
          <option value="assist">assist: run alone above the threshold unless risky</option>
          <option value="automate">automate: run alone above the threshold</option>
        </select>
      </label>
      <table>
        <thead>
          <tr><th scope="col">Action</th><th scope="col">Runs alone at or above</th><th scope="col">Asks instead below</th></tr>
        </thead>
        <tbody>
          {TOOLS.map((tool) => (
            <tr key={tool}>
              <th scope="row">{tool}</th>
              {(["auto_execute", "require_approval"] as const).map((field) => (
                <td key={field}>
                  <input
                    type="number" min="0" max="1" step="0.01" name={`${tool}.${field}`}
                    aria-label={`${tool} ${field.replace("_", " ")}`}
                    value={rows[tool][field]}
                    onInput={(e) => setRows({ ...rows, [tool]: { ...rows[tool], [field]: e.currentTarget.value } })}
                  />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <button type="submit">Save autonomy for this client</button>
    </form>
  );
}
