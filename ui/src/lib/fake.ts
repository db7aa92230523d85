// A Backend without Back Office: for component tests and for viewing the page in a browser.

import type { Backend } from "./backend";
import type { JobSummary, LiveState, Register, Schedule, Session, Settings, Site, SiteSchedules, Target, UpdateNotice } from "./types";

const now = () => new Date().toISOString();

export function demoState(): LiveState {
  const site: Site = { id: "s1", name: "Main Bar", register_count: 3, catalog_revision: 42 };
  const register = (id: string, name: string, extra: Partial<Register>): Register => ({
    id,
    site_id: site.id,
    name,
    online: true,
    in_sale: false,
    last_seen_at: now(),
    last_synced_at: now(),
    last_synced_source: "back_office",
    last_synced_by: "Alex Manager",
    applied_revision: 42,
    site_revision: 42,
    revisions_behind: 0,
    up_to_date: true,
    ...extra,
  });
  return {
    version: 1,
    connection: { kind: "live" },
    picture: {
      sites: { [site.id]: site },
      registers: {
        r1: register("r1", "Bar 1", {}),
        r2: register("r2", "Bar 2", { in_sale: true, applied_revision: 40, revisions_behind: 2, up_to_date: false }),
        r3: register("r3", "Kitchen", { online: false, applied_revision: 41, revisions_behind: 1, up_to_date: false }),
      },
      jobs: {},
      targets: {},
      as_of: now(),
    },
  };
}

export interface Fake extends Backend {
  /** Replaces the state and tells listeners, as a live event would. */
  push(state: LiveState): void;
  /** Ends the session, as Back Office revoking it would. */
  endSession(): void;
  /** Tells listeners of an update, as the app's updater would. */
  announceUpdate(notice: UpdateNotice): void;
  calls: string[];
}

export function fakeBackend(
  initial: LiveState = demoState(),
  session: Session | null = {
    url: "http://127.0.0.1:8080",
    email: "manager@harbour.example",
    display_name: "Alex Manager",
    company: "Harbour Hospitality",
    can_manage_sites: true,
    demo: true,
  },
): Fake {
  let state = initial;
  let current = session;
  let settings: Settings = { notifications: true, start_at_login: false, automatic_updates: true };
  let update: UpdateNotice = { ready: null, refused: null };
  const updateListeners = new Set<(n: UpdateNotice) => void>();
  const listeners = new Set<(s: LiveState) => void>();
  const signedOut = new Set<() => void>();
  const calls: string[] = [];
  const siteSchedules: Record<string, SiteSchedules> = {};
  const scheduled = (siteId: string): SiteSchedules =>
    (siteSchedules[siteId] ??= { site_id: siteId, time_zone: "Europe/London", schedules: [] });
  const job = (targets: Target[], siteId: string): JobSummary => ({
    id: `job${calls.length}`,
    site_id: siteId,
    kind: targets.length === 1 ? "register" : "site_online",
    source: "back_office",
    requested_by: current?.display_name ?? null,
    retry_when_free: true,
    created_at: now(),
    finished_at: null,
    counts: { queued: 0, delivered: targets.length, waiting: 0, synced: 0, skipped_busy: 0, skipped_offline: 0, expired: 0, failed: 0 },
  });
  return {
    calls,
    endSession() {
      current = null;
      signedOut.forEach((l) => l());
    },
    push(next) {
      next.version = Math.max(next.version, state.version + 1);
      state = next;
      listeners.forEach((l) => l(next));
    },
    async session() {
      return current;
    },
    async signIn(url, email, password, _remember, allowHttp) {
      calls.push(`signIn ${email}`);
      const host = url.replace(/^https?:\/\//, "").split(/[:/]/)[0];
      if (url.startsWith("http://") && !["127.0.0.1", "localhost"].includes(host) && !allowHttp) {
        throw { code: "unencrypted", message: `${url} is not encrypted: your password and everything else would cross the network readable by anyone on it.` };
      }
      if (password !== "harbour-manager") throw { code: "invalid_credentials", message: "Wrong email or password." };
      current = { url, email, display_name: "Alex Manager", company: "Harbour Hospitality", can_manage_sites: true, demo: false };
      return current;
    },
    async signOut() {
      calls.push("signOut");
      current = null;
    },
    async live() {
      return state;
    },
    async onChange(handler) {
      listeners.add(handler);
      return () => listeners.delete(handler);
    },
    async onSignedOut(handler) {
      signedOut.add(handler);
      return () => signedOut.delete(handler);
    },
    async syncRegister(registerId) {
      calls.push(`syncRegister ${registerId}`);
      const register = state.picture.registers[registerId];
      return job([], register.site_id);
    },
    async syncSite(siteId, _retryWhenFree, queueOffline) {
      calls.push(queueOffline ? `syncSite ${siteId} queueOffline` : `syncSite ${siteId}`);
      return job([], siteId);
    },
    async syncAll(queueOffline) {
      calls.push(queueOffline ? "syncAll queueOffline" : "syncAll");
      const group = { id: `group${calls.length}`, jobs: Object.keys(state.picture.sites).length };
      const jobs = Object.keys(state.picture.sites).map((siteId) => ({ ...job([], siteId), id: `job${calls.length}-${siteId}`, group }));
      const counts = { ...jobs[0].counts, delivered: 0 };
      return { id: group.id, requested_by: current?.display_name ?? null, created_at: now(), finished_at: null, counts, jobs };
    },
    async setCurrentSite(siteId) {
      calls.push(`setCurrentSite ${siteId}`);
    },
    async settings() {
      return settings;
    },
    async setNotifications(on) {
      calls.push(`setNotifications ${on}`);
      settings = { ...settings, notifications: on };
      return settings;
    },
    async setStartAtLogin(on) {
      calls.push(`setStartAtLogin ${on}`);
      settings = { ...settings, start_at_login: on };
      return settings;
    },
    async setAutomaticUpdates(on) {
      calls.push(`setAutomaticUpdates ${on}`);
      settings = { ...settings, automatic_updates: on };
      return settings;
    },
    async update() {
      return update;
    },
    async onUpdate(handler) {
      updateListeners.add(handler);
      return () => updateListeners.delete(handler);
    },
    async restartToUpdate() {
      calls.push("restartToUpdate");
    },
    announceUpdate(notice: UpdateNotice) {
      update = notice;
      updateListeners.forEach((l) => l(notice));
    },
    async registerActivity(registerId) {
      calls.push(`registerActivity ${registerId}`);
      const at = new Date(Date.now() - 3600_000).toISOString();
      return {
        syncs: [
          {
            job_id: "jx", kind: "register", source: "back_office", requested_by: "Alex Manager",
            created_at: at, state: "synced", revision: 42, reason: null, updated_at: at,
          },
        ],
        presence: [{ online: true, at }],
        missing:
          registerId === "r2"
            ? { from_revision: 40, to_revision: 42, known: true, diff: { added: ["Flat white"], changed: ["Latte"], removed: ["Mocha"], settings: [], categories: ["Hot drinks"] } }
            : null,
      };
    },
    async job(jobId) {
      calls.push(`job ${jobId}`);
      const summary = state.picture.jobs[jobId];
      return { ...summary, targets: Object.values(state.picture.targets[jobId] ?? {}) };
    },
    async exportHistory(siteId, siteName, from, to) {
      calls.push(`exportHistory ${siteId} ${from} ${to}`);
      return `/home/alex/Downloads/Register Sync history - ${siteName} - ${from} to ${to}.csv`;
    },
    async copyDiagnostics() {
      calls.push("copyDiagnostics");
      const text = "Register Sync 0.1.0\nBack Office: https://backoffice.example\nLatest problems: none\n";
      return { text, copied: true };
    },
    async openLogFolder() {
      calls.push("openLogFolder");
      return "/home/alex/.local/share/com.registersync.desktop/logs";
    },
    async schedules(siteId) {
      calls.push(`schedules ${siteId}`);
      return scheduled(siteId);
    },
    async saveSchedule(siteId, scheduleId, days, time) {
      calls.push(`saveSchedule ${siteId} ${scheduleId ?? "new"} ${days.join(",")} ${time}`);
      const all = scheduled(siteId);
      const next = new Date(Date.now() + 86_400_000).toISOString();
      const saved: Schedule = {
        id: scheduleId ?? `sch${calls.length}`, site_id: siteId, days, time, next_run_at: next,
        last_run_at: null, created_by: "Alex Manager",
      };
      all.schedules = [...all.schedules.filter((s) => s.id !== saved.id), saved];
      return structuredClone(all);
    },
    async removeSchedule(siteId, scheduleId) {
      calls.push(`removeSchedule ${siteId} ${scheduleId}`);
      const all = scheduled(siteId);
      all.schedules = all.schedules.filter((s) => s.id !== scheduleId);
      return structuredClone(all);
    },
    async setTimeZone(siteId, timeZone) {
      calls.push(`setTimeZone ${siteId} ${timeZone}`);
      const all = scheduled(siteId);
      all.time_zone = timeZone;
      return structuredClone(all);
    },
  };
}
