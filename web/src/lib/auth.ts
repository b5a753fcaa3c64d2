// The one place that knows how this page proves who it is. Two credentials:
// - a Switchboard session (from a one-time sign-in link `#signin=<token>`), sent as
//   `Authorization: Bearer`, with the socket opened through a one-time ticket;
// - the development credential (X-Org / X-User, `/ws?org=&user=`), which the gateway accepts
//   only in development on loopback; `?org=&user=` in the page's URL selects it.
// Everything else asks this module for headers and the socket URL.

export type Credential =
  | { kind: "session"; token: string; expiresAt: string | null }
  | { kind: "dev"; org: string; user: string };

export interface Me {
  org: string;
  user: string;
  role: "admin" | "member";
  auth: string;
}

const STORE = "switchboard.credential";

export class AuthError extends Error {}

let current: Credential | null = null;

export function credential(): Credential | null {
  return current;
}

export function headers(): Record<string, string> {
  if (current === null) return {};
  if (current.kind === "session") return { authorization: `Bearer ${current.token}` };
  return { "x-org": current.org, "x-user": current.user };
}

function remember(next: Credential | null): void {
  current = next;
  if (next === null) localStorage.removeItem(STORE);
  else localStorage.setItem(STORE, JSON.stringify(next));
}

/** Resolve the credential at start-up: a sign-in link in the fragment wins (it is exchanged
 * once, then removed from the address bar so a reload or a shared URL cannot replay it), then
 * `?org=&user=` (development), then what this browser remembered. */
export async function start(): Promise<Credential | null> {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const link = fragment.get("signin");
  if (link) {
    history.replaceState(null, "", location.pathname + location.search);
    await signIn(link);
    return current;
  }
  const query = new URLSearchParams(location.search);
  const org = query.get("org");
  const user = query.get("user");
  if (org && user) {
    remember({ kind: "dev", org, user });
    return current;
  }
  const saved = localStorage.getItem(STORE);
  if (saved) {
    try {
      current = JSON.parse(saved) as Credential;
    } catch {
      remember(null);
    }
  }
  return current;
}

export async function signIn(token: string): Promise<void> {
  const response = await fetch("/v1/auth/signin", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ token: token.trim() }),
  });
  if (!response.ok) {
    throw new AuthError(
      response.status === 404
        ? "This gateway does not offer sign-in links yet."
        : "That sign-in link is invalid or was already used. Ask for a new one.",
    );
  }
  const body = (await response.json()) as { session: string; expires_at?: string };
  remember({ kind: "session", token: body.session, expiresAt: body.expires_at ?? null });
}

export function useDevCredential(org: string, user: string): void {
  remember({ kind: "dev", org, user });
}

/** Who the gateway says we are (and whether the credential still works). */
export async function whoAmI(): Promise<Me> {
  const response = await fetch("/v1/auth/me", { headers: headers() });
  if (response.ok) return (await response.json()) as Me;
  throw new AuthError(
    response.status === 401 || response.status === 403
      ? "Your session has ended. Sign in again."
      : `Signing in failed (${response.status}). Try again.`,
  );
}

export async function signOut(): Promise<void> {
  if (current?.kind === "session") {
    await fetch("/v1/auth/signout", { method: "POST", headers: headers() }).catch(() => undefined);
  }
  remember(null);
}

/** The socket URL for one connection attempt: a fresh one-time ticket per attempt. */
export async function socketUrl(): Promise<string> {
  const base = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  if (current === null) throw new AuthError("Not signed in.");
  if (current.kind === "dev") {
    return `${base}?org=${encodeURIComponent(current.org)}&user=${encodeURIComponent(current.user)}`;
  }
  const response = await fetch("/v1/auth/ws-ticket", { method: "POST", headers: headers() });
  if (response.status === 401) throw new AuthError("Your session has ended. Sign in again.");
  if (!response.ok) throw new Error(`ticket refused (${response.status})`);
  const { ticket } = (await response.json()) as { ticket: string };
  return `${base}?ticket=${encodeURIComponent(ticket)}`;
}
