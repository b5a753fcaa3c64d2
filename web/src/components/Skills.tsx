import { useEffect, useState } from "preact/hooks";
import { api, message, unwrap } from "../lib/api";
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
  const [resolved, setResolved] = useState<{ values: Record<string, unknown>; provenance: Record<string, string> } | null>(null);
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
      setResolved({ values: leaves(res.skills), provenance: res.provenance });
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
