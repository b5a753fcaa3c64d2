import { useState } from "preact/hooks";
import * as auth from "../lib/auth";
import { message } from "../lib/api";

/** The signed-out screen: paste a one-time sign-in link (or open it), or, in development, name
 * an org and user (the gateway refuses that credential outside development). */
export function SignIn({ error, onSignedIn }: { error: string | null; onSignedIn: () => void }) {
  const [link, setLink] = useState("");
  const [org, setOrg] = useState("");
  const [user, setUser] = useState("");
  const [problem, setProblem] = useState<string | null>(error);

  async function useLink(e: Event): Promise<void> {
    e.preventDefault();
    const token = link.includes("#signin=") ? link.split("#signin=")[1] : link;
    try {
      await auth.signIn(token);
      onSignedIn();
    } catch (err) {
      setProblem(message(err));
    }
  }

  function useDev(e: Event): void {
    e.preventDefault();
    auth.useDevCredential(org.trim(), user.trim());
    onSignedIn();
  }

  return (
    <main class="signin">
      <h1>Switchboard</h1>
      <p>Open the sign-in link you were given, or paste it here.</p>
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      <form onSubmit={(e) => void useLink(e)} aria-label="Sign in with a link">
        <label>
          Sign-in link
          <input name="link" value={link} onInput={(e) => setLink(e.currentTarget.value)} autoComplete="off" required />
        </label>
        <button type="submit">Sign in</button>
      </form>
      <details>
        <summary>Development sign-in</summary>
        <form onSubmit={useDev} aria-label="Development sign-in">
          <label>
            Org <input name="org" value={org} onInput={(e) => setOrg(e.currentTarget.value)} required pattern="[A-Za-z0-9_-]{1,64}" />
          </label>
          <label>
            User <input name="user" value={user} onInput={(e) => setUser(e.currentTarget.value)} required pattern="[A-Za-z0-9_-]{1,64}" />
          </label>
          <button type="submit">Continue</button>
        </form>
      </details>
    </main>
  );
}
