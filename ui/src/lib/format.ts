// Words for what the manager sees, the same everywhere (docs/ui.md).

import type { JobCounts, Register, Target, TargetState } from "./types";

/** "just now", "4 min ago", "2 h ago", "yesterday 22:14", "12 Nov 09:30"; "never". */
export function relative(iso: string | null, now: Date = new Date()): string {
  if (!iso) return "never";
  const at = new Date(iso);
  const seconds = Math.round((now.getTime() - at.getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const startOfToday = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  if (at >= startOfToday) return `${Math.floor(seconds / 3600)} h ago`;
  if (at >= new Date(startOfToday.getTime() - 86_400_000)) return `yesterday ${time}`;
  return `${at.toLocaleDateString([], { day: "numeric", month: "short" })} ${time}`;
}

export function exact(iso: string | null): string {
  return iso ? new Date(iso).toLocaleString() : "never synced";
}

/** Who started a job: the manager's name, "schedule", or staff at the register. */
export function asker(job: { requested_by: string | null; source: string }): string {
  if (job.requested_by) return job.requested_by;
  return job.source === "schedule" ? "schedule" : "staff, at the register";
}

/** "every day", "weekdays", "Mon, Fri". */
export function daysWords(days: string[]): string {
  if (days.length === 7) return "Every day";
  if (days.length === 5 && !days.includes("sat") && !days.includes("sun")) return "Weekdays";
  return days.map((d) => d[0].toUpperCase() + d.slice(1)).join(", ");
}

/** A moment as the site's clock shows it: "Sun 29 Nov 05:30"; the page's own clock if the zone
 * is unknown here. */
export function inZone(iso: string, zone: string | undefined): string {
  const options: Intl.DateTimeFormatOptions = {
    weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hour12: false,
  };
  try {
    return new Date(iso).toLocaleString([], { ...options, timeZone: zone });
  } catch {
    return new Date(iso).toLocaleString([], options);
  }
}

export function who(register: Register): string {
  if (!register.last_synced_at) return "";
  if (register.last_synced_source === "register") return "at register";
  if (register.last_synced_source === "schedule") return "by schedule";
  return register.last_synced_by ? `by ${register.last_synced_by}` : "Back Office";
}

export function menu(register: Register): string {
  return register.up_to_date ? "Up to date" : `${register.revisions_behind} behind`;
}

export interface Status {
  icon: string;
  word: string;
  kind: "online" | "sale" | "offline";
}

export function status(register: Register): Status {
  if (!register.online) return { icon: "○", word: "Offline", kind: "offline" };
  if (register.in_sale) return { icon: "◐", word: "In a sale", kind: "sale" };
  return { icon: "●", word: "Online", kind: "online" };
}

/** Problems first (offline, out of date), then by name. */
export function byProblemsThenName(a: Register, b: Register): number {
  const weight = (r: Register) => (r.online ? 0 : 2) + (r.up_to_date ? 0 : 1);
  return weight(b) - weight(a) || a.name.localeCompare(b.name, undefined, { numeric: true });
}

/** A time as "18:30" when it is today, else "Sat 18:30", in local time. */
export function untilWords(at: string, now: Date = new Date()): string {
  const when = new Date(at);
  const time = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (when.toDateString() === now.toDateString()) return time;
  return `${when.toLocaleDateString([], { weekday: "short" })} ${time}`;
}

/** A target's outcome in words; `until`: when a wait (a sale's, or an offline register's
 * queue) runs out. */
export function chip(state: TargetState, reason: string | null, until: string | null = null): string {
  switch (state) {
    case "awaiting_reconnect":
      return until
        ? `Queued — offline, syncs when it reconnects, until ${untilWords(until)}`
        : "Queued — offline, syncs when it reconnects";
    case "queued":
    case "delivered":
      return "Syncing…";
    case "waiting":
      return "Waiting — in a sale, will sync when it ends";
    case "synced":
      return "Synced";
    case "skipped_busy":
      return "Skipped — in a sale";
    case "skipped_offline":
      return "Skipped — offline";
    case "expired":
      return reason === "the register did not come back online in time"
        ? "Expired — did not come back online in time"
        : "Expired — the sale did not end in time";
    case "failed":
      return `Failed — ${reason ?? "unknown reason"}`;
  }
}

/** A job's (or an all-sites sync's) counts: "3 synced, 1 waiting, 2 skipped". */
export function countsWords(c: JobCounts): string {
  const parts = [`${c.synced} synced`];
  const running = c.queued + c.delivered;
  if (running) parts.push(`${running} syncing`);
  if (c.waiting) parts.push(`${c.waiting} waiting`);
  if (c.awaiting_reconnect) parts.push(`${c.awaiting_reconnect} queued until they reconnect`);
  if (c.skipped_busy + c.skipped_offline) parts.push(`${c.skipped_busy + c.skipped_offline} skipped`);
  if (c.failed + c.expired) parts.push(`${c.failed + c.expired} failed`);
  return parts.join(", ");
}

/** "5 synced · 1 waiting for its sale to end". */
export function summary(targets: Target[]): string {
  const count = (states: TargetState[]) => targets.filter((t) => states.includes(t.state)).length;
  const parts: string[] = [];
  const synced = count(["synced"]);
  const running = count(["queued", "delivered"]);
  const waiting = count(["waiting"]);
  const queued = count(["awaiting_reconnect"]);
  const skipped = count(["skipped_busy", "skipped_offline"]);
  const failed = count(["failed", "expired"]);
  if (running) parts.push(`${running} syncing`);
  if (synced) parts.push(`${synced} synced`);
  if (waiting) parts.push(`${waiting} waiting for ${waiting === 1 ? "its sale" : "their sales"} to end`);
  if (queued) parts.push(`${queued} offline, syncing when ${queued === 1 ? "it reconnects" : "they reconnect"}`);
  if (skipped) parts.push(`${skipped} skipped`);
  if (failed) parts.push(`${failed} failed`);
  return parts.join(" · ");
}

/** What the filter of a big site can narrow the table to. */
export type Show = "all" | "offline" | "sale" | "behind" | "failed";

/** Whether `register` is one the manager asked to see: its name holds `search` (any case) and
 * it is what `show` names. `failed`: its latest sync failed or expired. */
export function shown(register: Register, search: string, show: Show, latest?: Target): boolean {
  const wanted = search.trim().toLocaleLowerCase();
  if (wanted && !register.name.toLocaleLowerCase().includes(wanted)) return false;
  switch (show) {
    case "all":
      return true;
    case "offline":
      return !register.online;
    case "sale":
      return register.online && register.in_sale;
    case "behind":
      return !register.up_to_date;
    case "failed":
      return latest?.state === "failed" || latest?.state === "expired";
  }
}
