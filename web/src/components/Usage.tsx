import { useEffect, useState } from "preact/hooks";
import { api, message, unwrap, type Schemas } from "../lib/api";
import { clientId, clients, currentClient, me, say } from "../state";

type Report = Schemas["UsageReport"];
type Day = Schemas["DailyUsage"];

const DAYS = 30;

/** Cost per day as bars (SVG, no chart library: one series of 30 bars). */
function DayChart({ days, label }: { days: Day[]; label: string }) {
  const max = Math.max(1e-9, ...days.map((d) => d.cost_usd));
  const total = days.reduce((sum, d) => sum + d.cost_usd, 0);
  const width = 14;
  return (
    <figure class="day-chart">
      <svg role="img" aria-label={`${label}: estimated cost per day over ${days.length} days, $${total.toFixed(4)} in all`} viewBox={`0 0 ${days.length * width} 120`} width="100%" height="140" preserveAspectRatio="none">
        {days.map((d, i) => {
          const h = (d.cost_usd / max) * 100;
          return (
            <rect key={d.date} x={i * width + 2} y={110 - h} width={width - 4} height={Math.max(h, d.turns ? 1 : 0)} rx="2">
              <title>{`${d.date}: ${d.turns} turns, ${d.input_tokens + d.output_tokens} tokens, $${d.cost_usd.toFixed(4)}`}</title>
            </rect>
          );
        })}
        <line x1="0" x2={days.length * width} y1="110" y2="110" class="axis" />
      </svg>
      <figcaption>
        {label}: <strong>${total.toFixed(4)}</strong> over the last {days.length} days ({days[0]?.date} – {days[days.length - 1]?.date})
      </figcaption>
    </figure>
  );
}

/** Usage and estimated cost over time: the selected client's and (admins) the org's per day,
 * and every client's totals. */
export function Usage() {
  const [rows, setRows] = useState<Report[]>([]);
  const [orgDays, setOrgDays] = useState<Day[] | null>(null);
  const [clientDays, setClientDays] = useState<Day[]>([]);
  const admin = me.value?.role === "admin";
  const client = clientId.value!;

  useEffect(() => {
    Promise.all(clients.value.map((c) => unwrap(api.GET("/v1/clients/{client_id}/usage", { params: { path: { client_id: c.id } } }))))
      .then(setRows)
      .catch((e: unknown) => say(message(e)));
    if (admin) void unwrap(api.GET("/v1/usage/daily", { params: { query: { days: DAYS } } })).then(setOrgDays, () => undefined);
  }, [clients.value]);
  useEffect(() => {
    unwrap(api.GET("/v1/clients/{client_id}/usage/daily", { params: { path: { client_id: client }, query: { days: DAYS } } }))
      .then(setClientDays)
      .catch((e: unknown) => say(message(e)));
  }, [client]);

  const name = (id: string) => clients.value.find((c) => c.id === id)?.name ?? id;
  return (
    <section class="usage" aria-label="Usage and cost">
      {clientDays.length > 0 && <DayChart days={clientDays} label={currentClient.value?.name ?? client} />}
      {orgDays && <DayChart days={orgDays} label="Whole organisation" />}
      <table>
        <caption>Totals per client</caption>
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
