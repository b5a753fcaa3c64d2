import { useEffect, useState } from "preact/hooks";
import * as auth from "../lib/auth";
import { message, SIGNED_OUT } from "../lib/api";
import { clientId, connection, loadClients, me, notice, view, type View } from "../state";
import { Chat } from "./Chat";
import { Clients } from "./Clients";
import { Inbox } from "./Inbox";
import { Memory } from "./Memory";
import { SignIn } from "./SignIn";
import { Skills } from "./Skills";
import { Usage } from "./Usage";

const VIEWS: [View, string][] = [
  ["chat", "Chat"],
  ["inbox", "Inbox"],
  ["memory", "Memory"],
  ["skills", "Skills"],
  ["usage", "Usage"],
];

const STATE_WORDS = { connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…", "signed-out": "Signed out" };

export function App() {
  const [phase, setPhase] = useState<"starting" | "signed-out" | "ready">("starting");
  const [error, setError] = useState<string | null>(null);

  async function enter(): Promise<void> {
    try {
      me.value = await auth.whoAmI();
    } catch (e) {
      setError(message(e));
      setPhase("signed-out");
      return;
    }
    setPhase("ready");
    void connection.open();
    await loadClients();
  }

  function begin(): void {
    auth
      .start()
      .then((credential) => (credential ? enter() : setPhase("signed-out")))
      .catch((e: unknown) => {
        setError(message(e));
        setPhase("signed-out");
      });
  }

  useEffect(() => {
    begin();
    const fromHash = () => {
      // A sign-in link opened in a tab that already shows the app changes only the fragment.
      if (location.hash.startsWith("#signin=")) return begin();
      const name = location.hash.slice(2) as View;
      if (VIEWS.some(([v]) => v === name)) {
        view.value = name;
        notice.value = null; // an alert belongs to the screen it was raised on
      }
    };
    const expired = () => {
      connection.close();
      setError("Your session has ended. Sign in again.");
      setPhase("signed-out");
    };
    fromHash();
    addEventListener("hashchange", fromHash);
    addEventListener(SIGNED_OUT, expired);
    return () => {
      removeEventListener("hashchange", fromHash);
      removeEventListener(SIGNED_OUT, expired);
    };
  }, []);

  if (phase === "starting") return <p class="boot">Loading Switchboard…</p>;
  if (phase === "signed-out" || connection.state.value === "signed-out") {
    return <SignIn error={error} onSignedIn={() => void enter()} />;
  }

  async function signOut(): Promise<void> {
    connection.close();
    await auth.signOut();
    me.value = null;
    setError(null);
    setPhase("signed-out");
  }

  const who = me.value!;
  const state = connection.state.value;
  return (
    <div class="shell">
      <header class="top">
        <h1>Switchboard</h1>
        <span class="who" data-testid="who">
          {who.user} <span class="muted">· {who.org} · {who.role}</span>
        </span>
        <span class="status" id="status" data-state={state} role="status" aria-live="polite">
          <span class="dot" aria-hidden="true" /> {STATE_WORDS[state]}
        </span>
        <button type="button" class="link" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <nav class="views" aria-label="Sections">
        {VIEWS.map(([name, label]) => (
          <a key={name} href={`#/${name}`} aria-current={view.value === name ? "page" : undefined} data-view={name}>
            {label}
          </a>
        ))}
      </nav>
      {notice.value && (
        <div class={`notice ${notice.value.kind}`} role="alert">
          {notice.value.text}
          <button type="button" class="link" aria-label="Dismiss" onClick={() => (notice.value = null)}>
            ×
          </button>
        </div>
      )}
      <div class="body">
        {view.value !== "inbox" && <Clients />}
        <main class="main" id="main">
          {view.value === "inbox" ? (
            <Inbox />
          ) : clientId.value === null ? (
            <p class="empty">No clients yet. {who.role === "admin" ? "Create one on the left." : "Ask an admin to assign you a client."}</p>
          ) : view.value === "chat" ? (
            <Chat />
          ) : view.value === "memory" ? (
            <Memory />
          ) : view.value === "skills" ? (
            <Skills />
          ) : (
            <Usage />
          )}
        </main>
      </div>
    </div>
  );
}
