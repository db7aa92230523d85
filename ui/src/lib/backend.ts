// The seam between the page and the app: the only module that calls Tauri's `invoke` and
// `listen`. Components get a `Backend`, so tests and a plain browser can give them a fake.

import type { Day, Diagnostics, Job, JobSummary, RegisterActivity, LiveState, Session, Settings, SiteSchedules, SyncGroup, UpdateNotice, Uuid } from "./types";

export interface Backend {
  /** The current session, or null when signed out. */
  session(): Promise<Session | null>;
  /** `allowHttp`: the manager chose an unencrypted connection to another computer. */
  signIn(url: string, email: string, password: string, remember: boolean, allowHttp: boolean): Promise<Session>;
  signOut(): Promise<void>;
  /** The current picture; then `onChange` is called with every new one. */
  live(): Promise<LiveState>;
  onChange(handler: (state: LiveState) => void): Promise<() => void>;
  /** Called when the session ends without the user signing out (revoked, expired elsewhere). */
  onSignedOut(handler: () => void): Promise<() => void>;
  syncRegister(registerId: Uuid, retryWhenFree: boolean): Promise<JobSummary>;
  /** `queueOffline`: offline registers sync when they reconnect (within a day), not skipped. */
  syncSite(siteId: Uuid, retryWhenFree: boolean, queueOffline: boolean): Promise<JobSummary>;
  /** "Sync online registers at all my sites": one job per site, announced as one. */
  syncAll(queueOffline: boolean): Promise<SyncGroup>;
  /** Tells the tray which site "Sync online registers" is for. */
  setCurrentSite(siteId: Uuid): Promise<void>;
  settings(): Promise<Settings>;
  /** Each answers with the settings as they now are. */
  setNotifications(on: boolean): Promise<Settings>;
  setStartAtLogin(on: boolean): Promise<Settings>;
  setAutomaticUpdates(on: boolean): Promise<Settings>;
  /** What there is to say about the app's own updates; then `onUpdate` hears every change. */
  update(): Promise<UpdateNotice>;
  onUpdate(handler: (notice: UpdateNotice) => void): Promise<() => void>;
  /** Installs the update that is ready and starts the new version. */
  restartToUpdate(): Promise<void>;
  /** A register's recent syncs and when it went online and offline (its own page). */
  registerActivity(registerId: Uuid): Promise<RegisterActivity>;
  /** A job with its registers (a history item opened). */
  job(jobId: Uuid): Promise<Job>;
  /** Saves a site's history over local days `from`..`to` (YYYY-MM-DD) as CSV; answers where. */
  exportHistory(siteId: Uuid, siteName: string, from: string, to: string): Promise<string>;
  /** Puts what support needs (plain text, no secrets) on the clipboard; answers it. */
  copyDiagnostics(): Promise<Diagnostics>;
  /** Opens the log folder in the file manager; answers where it is. */
  openLogFolder(): Promise<string>;
  /** A site's scheduled syncs and its time zone; each change answers them as they now are. */
  schedules(siteId: Uuid): Promise<SiteSchedules>;
  /** Adds a schedule, or changes `scheduleId`. */
  saveSchedule(siteId: Uuid, scheduleId: Uuid | null, days: Day[], time: string): Promise<SiteSchedules>;
  removeSchedule(siteId: Uuid, scheduleId: Uuid): Promise<SiteSchedules>;
  setTimeZone(siteId: Uuid, timeZone: string): Promise<SiteSchedules>;
}

export function tauriBackend(): Backend {
  // Imported lazily so the page also loads where Tauri is absent.
  const core = import("@tauri-apps/api/core");
  const event = import("@tauri-apps/api/event");
  const invoke = async <T>(command: string, args?: Record<string, unknown>): Promise<T> =>
    (await core).invoke<T>(command, args);
  return {
    session: () => invoke("session"),
    signIn: (url, email, password, remember, allowHttp) =>
      invoke("sign_in", { url, email, password, remember, allowHttp }),
    signOut: () => invoke("sign_out"),
    live: () => invoke("live"),
    onChange: async (handler) => (await event).listen<LiveState>("live", (e) => handler(e.payload)),
    onSignedOut: async (handler) => (await event).listen("signed_out", () => handler()),
    syncRegister: (registerId, retryWhenFree) => invoke("sync_register", { registerId, retryWhenFree }),
    syncSite: (siteId, retryWhenFree, queueOffline) =>
      invoke("sync_site", { siteId, retryWhenFree, queueOffline }),
    syncAll: (queueOffline) => invoke("sync_all", { queueOffline }),
    setCurrentSite: (siteId) => invoke("set_current_site", { siteId }),
    settings: () => invoke("settings"),
    setNotifications: (on) => invoke("set_notifications", { on }),
    setStartAtLogin: (on) => invoke("set_start_at_login", { on }),
    setAutomaticUpdates: (on) => invoke("set_automatic_updates", { on }),
    update: () => invoke("update_state"),
    onUpdate: async (handler) => (await event).listen<UpdateNotice>("update", (e) => handler(e.payload)),
    restartToUpdate: () => invoke("restart_to_update"),
    copyDiagnostics: () => invoke("copy_diagnostics"),
    job: (jobId) => invoke("job", { jobId }),
    registerActivity: (registerId) => invoke("register_activity", { registerId }),
    exportHistory: (siteId, siteName, from, to) => invoke("export_history", { siteId, siteName, from, to }),
    openLogFolder: () => invoke("open_log_folder"),
    schedules: (siteId) => invoke("schedules", { siteId }),
    saveSchedule: (siteId, scheduleId, days, time) => invoke("save_schedule", { siteId, scheduleId, days, time }),
    removeSchedule: (siteId, scheduleId) => invoke("remove_schedule", { siteId, scheduleId }),
    setTimeZone: (siteId, timeZone) => invoke("set_time_zone", { siteId, timeZone }),
  };
}

/** A UiError's message, or a plain description of anything else thrown. */
/** The stable code of a failure from the shell (`crates/desktop` chooses them), if it has one. */
export function codeOf(error: unknown): string | undefined {
  if (error && typeof error === "object" && "code" in error) {
    return String((error as { code: unknown }).code);
  }
  return undefined;
}

export function describe(error: unknown): string {
  if (error && typeof error === "object" && "message" in error) {
    return String((error as { message: unknown }).message);
  }
  return String(error);
}
