// The shapes the desktop shell sends (mirrors crates/protocol and crates/desktop).

export type Uuid = string;

export interface Site {
  id: Uuid;
  name: string;
  register_count: number;
  catalog_revision: number;
  /** IANA name ("Europe/London"); absent from older Back Offices. */
  time_zone?: string;
  /** When its next scheduled sync runs, if it has a schedule. */
  next_scheduled_sync?: string | null;
}

export type Day = "mon" | "tue" | "wed" | "thu" | "fri" | "sat" | "sun";

export interface Schedule {
  id: Uuid;
  site_id: Uuid;
  days: Day[];
  /** "HH:MM" in the site's time zone. */
  time: string;
  next_run_at: string;
  last_run_at: string | null;
  created_by: string | null;
}

export interface SiteSchedules {
  site_id: Uuid;
  time_zone: string;
  schedules: Schedule[];
}

export interface Register {
  id: Uuid;
  site_id: Uuid;
  name: string;
  online: boolean;
  in_sale: boolean;
  last_seen_at: string | null;
  last_synced_at: string | null;
  last_synced_source: "back_office" | "register" | "schedule" | null;
  last_synced_by: string | null;
  applied_revision: number;
  site_revision: number;
  revisions_behind: number;
  up_to_date: boolean;
}

export type TargetState =
  | "queued"
  | "delivered"
  | "waiting"
  | "awaiting_reconnect"
  | "synced"
  | "skipped_busy"
  | "skipped_offline"
  | "expired"
  | "failed";

export interface Target {
  id: Uuid;
  job_id: Uuid;
  register_id: Uuid;
  register_name: string;
  state: TargetState;
  revision: number | null;
  reason: string | null;
  updated_at: string;
  wait_expires_at: string | null;
}

export interface JobCounts {
  queued: number;
  delivered: number;
  waiting: number;
  /** Offline registers queued until they reconnect; absent from older Back Offices. */
  awaiting_reconnect?: number;
  synced: number;
  skipped_busy: number;
  skipped_offline: number;
  expired: number;
  failed: number;
}

export interface JobSummary {
  id: Uuid;
  site_id: Uuid;
  kind: "register" | "site_online";
  source: "back_office" | "register" | "schedule";
  requested_by: string | null;
  retry_when_free: boolean;
  created_at: string;
  finished_at: string | null;
  counts: JobCounts;
  /** Part of "Sync online registers at all my sites": the group and how many sites it has. */
  group?: { id: Uuid; jobs: number } | null;
}

/** "Sync online registers at all my sites": one job per site, seen as one. */
export interface SyncGroup {
  id: Uuid;
  requested_by: string | null;
  created_at: string;
  finished_at: string | null;
  counts: JobCounts;
  /** Each site's job: the per-site breakdown. */
  jobs: JobSummary[];
}

export type Connection =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "reconnecting"; as_of: string | null }
  | { kind: "offline"; as_of: string };

export interface Picture {
  sites: Record<Uuid, Site>;
  registers: Record<Uuid, Register>;
  jobs: Record<Uuid, JobSummary>;
  targets: Record<Uuid, Record<Uuid, Target>>;
  as_of: string | null;
}

export interface LiveState {
  /** Increases with every change: of two states, the higher version is the newer. */
  version: number;
  picture: Picture;
  connection: Connection;
}

export interface Session {
  url: string;
  email: string;
  display_name: string;
  company: string;
  can_manage_sites: boolean;
  demo: boolean;
  /** The manager chose an unencrypted connection to this Back Office. */
  allow_http?: boolean;
}

/** The manager's choices for this PC. */
export interface Settings {
  /** System notifications when syncs finish, wait, fail or expire. */
  notifications: boolean;
  /** The app starts, in the tray, when the manager logs in to the PC. */
  start_at_login: boolean;
  /** The app checks for a new version of itself at start and daily. */
  automatic_updates: boolean;
}

/** What there is to say about the app's own updates. */
export interface UpdateNotice {
  /** A newer version, downloaded and verified, installed on restart. */
  ready: string | null;
  /** Why the last update found was not taken, in words. */
  refused: string | null;
}

/** Every failure from the shell has this shape; `code` is stable, `message` is for people. */
export interface UiError {
  code: string;
  message: string;
}

/** What "Copy diagnostics" put on the clipboard, and whether it could. */
export interface Diagnostics {
  text: string;
  copied: boolean;
}

/** A job with each register it reached and how that ended. */
export interface Job extends JobSummary {
  targets: Target[];
}

/** One sync of one register: who asked, when, and how it ended for this register. */
export interface RegisterSync {
  job_id: Uuid;
  kind: "register" | "site_online";
  source: string;
  requested_by: string | null;
  created_at: string;
  state: TargetState;
  revision: number | null;
  reason: string | null;
  updated_at: string;
}

/** A register's own page: its recent syncs and when it went online and offline. */
export interface RegisterActivity {
  syncs: RegisterSync[];
  presence: { online: boolean; at: string }[];
  /** What the menu gained and lost since the revision it holds; null when up to date. */
  missing: {
    from_revision: number;
    to_revision: number;
    /** False when the revision it holds is no longer kept: the lists are then the whole menu. */
    known: boolean;
    /** `categories`: added, renamed or removed; absent from older Back Offices. */
    diff: { added: string[]; changed: string[]; removed: string[]; settings: string[]; categories?: string[] };
  } | null;
}
