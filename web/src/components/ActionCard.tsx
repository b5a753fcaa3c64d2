import { signal } from "@preact/signals";
import { useState } from "preact/hooks";
import { api, unwrap } from "../lib/api";
import { FieldError, fields, toArguments, toInput } from "../lib/schemaForm";
import { clients, decide, type Action } from "../state";

interface Tool {
  name: string;
  description: string;
  risky: boolean;
  input_schema: Record<string, unknown>;
}

const tools = signal<Record<string, Tool> | null>(null);

async function loadTools(): Promise<void> {
  if (tools.value) return;
  const list = (await unwrap(api.GET("/v1/tools"))) as Tool[];
  tools.value = Object.fromEntries(list.map((t) => [t.name, t]));
}

function expiry(at: string | null | undefined): string {
  if (!at) return "";
  const minutes = Math.round((new Date(at).getTime() - Date.now()) / 60000);
  if (minutes < 0) return "expired";
  return minutes < 60 ? `expires in ${minutes} min` : `expires ${new Date(at).toLocaleString()}`;
}

/** An approval card: what the assistant wants to do, how sure it is and why; approve, edit
 * (a form generated from the tool's JSON schema) or reject. */
export function ActionCard({ action, selectable, selected, onSelect }: { action: Action; selectable?: boolean; selected?: boolean; onSelect?: (on: boolean) => void }) {
  const [editing, setEditing] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const pending = action.status === "pending";
  const client = clients.value.find((c) => c.id === action.client_id);
  // The untrusted content (ingested mail, tool output...) that influenced the proposal.
  const sources = action.tainted_by ?? [];

  async function run(approve: boolean, args?: Record<string, unknown>): Promise<void> {
    setBusy(true);
    setProblem(await decide(action.action_id, approve, args));
    setBusy(false);
    if (approve) setEditing(false);
  }

  return (
    <section class="card" data-action={action.action_id} data-status={action.status} aria-label={`${action.tool} for ${client?.name ?? action.client_id}`}>
      <header>
        {selectable && pending && (
          <input type="checkbox" aria-label="Select for batch approval" checked={selected} onChange={(e) => onSelect?.(e.currentTarget.checked)} />
        )}
        <h3>{action.tool}</h3>
        <span class="client-tag">{client?.name ?? action.client_id}</span>
        {action.risky && <span class="risk">risky</span>}
        {action.confidence !== null && action.confidence !== undefined && (
          <span class="confidence" title="The model's confidence">{Math.round(action.confidence * 100)}%</span>
        )}
        <span class="state">{action.status}</span>
      </header>
      {action.rationale && <p class="why">{action.rationale}</p>}
      {sources.length > 0 && (
        <p class="taint" role="note">
          Influenced by untrusted content: {sources.join(", ")}
        </p>
      )}
      {editing ? (
        <EditForm action={action} busy={busy} onCancel={() => setEditing(false)} onApprove={(args) => void run(true, args)} />
      ) : (
        <dl class="args">
          {Object.entries(action.arguments ?? {})
            .filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && v.length === 0))
            .map(([k, v]) => (
            <div key={k}>
              <dt>{k.replace(/_/g, " ")}</dt>
              <dd>{Array.isArray(v) ? v.join(", ") : typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>
            </div>
          ))}
        </dl>
      )}
      {pending && !editing && (
        <div class="buttons">
          <button type="button" class="approve" disabled={busy} onClick={() => void run(true)}>
            Approve
          </button>
          <button
            type="button"
            class="edit secondary"
            disabled={busy}
            onClick={() => {
              void loadTools().then(() => setEditing(true), () => setProblem("The tool's form could not be loaded."));
            }}
          >
            Edit…
          </button>
          <button type="button" class="reject secondary" disabled={busy} onClick={() => void run(false)}>
            Reject
          </button>
          <span class="muted">{expiry(action.expires_at)}</span>
        </div>
      )}
      {!pending && action.status !== "approved" && <p class="muted outcome">{action.error ?? (action.status === "executed" ? "Done." : "")}</p>}
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
    </section>
  );
}

function EditForm({ action, busy, onCancel, onApprove }: { action: Action; busy: boolean; onCancel: () => void; onApprove: (args: Record<string, unknown>) => void }) {
  const tool = tools.value?.[action.tool];
  const form = tool ? fields(tool.input_schema) : [];
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(form.map((f) => [f.name, toInput(f, (action.arguments ?? {})[f.name])])),
  );
  const [problem, setProblem] = useState<FieldError | null>(null);
  if (!tool) return <p class="error">This tool has no form.</p>;
  return (
    <form
      class="edit-form"
      onSubmit={(e) => {
        e.preventDefault();
        try {
          onApprove(toArguments(form, values));
        } catch (err) {
          if (err instanceof FieldError) setProblem(err);
          else throw err;
        }
      }}
    >
      {form.map((f) => {
        const id = `${action.action_id}-${f.name}`;
        const common = {
          id,
          name: f.name,
          value: values[f.name],
          "aria-invalid": problem?.field === f.name ? true : undefined,
          onInput: (e: Event) => setValues({ ...values, [f.name]: (e.currentTarget as HTMLInputElement).value }),
        };
        return (
          <div class="field" key={f.name}>
            <label for={id}>
              {f.label}
              {f.required && " *"}
            </label>
            {f.kind === "long-text" ? (
              <textarea rows={4} {...common} />
            ) : f.kind === "choice" ? (
              <select {...common}>
                {f.choices.map((c) => (
                  <option key={c}>{c}</option>
                ))}
              </select>
            ) : (
              <input type={f.kind === "integer" || f.kind === "number" ? "number" : "text"} step={f.kind === "number" ? "any" : undefined} {...common} />
            )}
            {f.hint && <small>{f.hint}</small>}
          </div>
        );
      })}
      {problem && (
        <p class="error" role="alert">
          {problem.message}
        </p>
      )}
      <div class="buttons">
        <button type="submit" class="approve-edited" disabled={busy}>
          Approve with changes
        </button>
        <button type="button" class="secondary" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
