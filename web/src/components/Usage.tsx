import { useEffect, useState } from "preact/hooks";
import { api, message, unwrap, type Schemas } from "../lib/api";
import { clients, me, say } from "../state";

type Report = Schemas["UsageReport"];

/** Token use and estimated cost per client, and the org's total (admins), as a bar chart. */
export function Usage() {
  const [rows, setRows] = useState<Report[]>([]);
  const [org, setOrg] = useState<Report | null>(null);
  useEffect(() => {
    Promise.all(clients.value.map((c) => unwrap(api.GET("/v1/clients/{client_id}/usage", { params: { path: { client_id: c.id } } }))))
      .then(setRows)
      .catch((e: unknown) => say(message(e)));
    if (me.value?.role === "admin") void unwrap(api.GET("/v1/usage")).then(setOrg, () => undefined);
  }, [clients.value]);

  const max = Math.max(1e-9, ...rows.map((r) => r.cost_usd));
  const name = (id: string) => clients.value.find((c) => c.id === id)?.name ?? id;
  return (
    <section class="usage" aria-label="Usage and cost">
      {org && (
        <p class="total">
          Organisation: <strong>${org.cost_usd.toFixed(4)}</strong> · {org.turns} turns · {org.input_tokens + org.output_tokens} tokens
        </p>
      )}
      <svg class="chart" role="img" aria-label="Estimated cost per client" viewBox={`0 0 400 ${rows.length * 28 + 4}`} width="100%">
        {rows.map((r, i) => (
          <g key={r.subject_id} transform={`translate(0 ${i * 28})`}>
            <text x="0" y="18" class="label">{name(r.subject_id).slice(0, 18)}</text>
            <rect x="130" y="4" height="18" width={Math.max(1, (r.cost_usd / max) * 200)} rx="3" />
            <text x={136 + (r.cost_usd / max) * 200} y="18" class="value">${r.cost_usd.toFixed(4)}</text>
          </g>
        ))}
      </svg>
      <table>
        <thead>
          <tr><th scope="col">Client</th><th scope="col">Turns</th><th scope="col">Input tokens</th><th scope="col">Output tokens</th><th scope="col">Cost (USD)</th></tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={r.subject_id}><th scope="row">{name(r.subject_id)}</th><td>{r.turns}</td><td>{r.input_tokens}</td><td>{r.output_tokens}</td><td>{r.cost_usd.toFixed(4)}</td></tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
