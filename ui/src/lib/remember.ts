// Where and as whom the manager last signed in: not secret (no password, no token), kept in the
// web view's storage so signing out does not make them type the address and email again.

import type { Session } from "./types";

const KEY = "regsync.last-sign-in";

export interface LastSignIn {
  url: string;
  email: string;
}

export function rememberSignIn(session: Session): void {
  if (session.demo) return;
  try {
    localStorage.setItem(KEY, JSON.stringify({ url: session.url, email: session.email }));
  } catch {
    // Storage full or unavailable: the form simply starts empty next time.
  }
}

export function lastSignIn(): LastSignIn | null {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "null");
    if (saved && typeof saved.url === "string" && typeof saved.email === "string") return saved;
  } catch {
    // Unreadable: start empty.
  }
  return null;
}
