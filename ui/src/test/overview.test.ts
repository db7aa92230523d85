import { describe, expect, it } from "vitest";
import { fireEvent, render, screen, within } from "@testing-library/svelte";
import App from "../App.svelte";
import { demoState, fakeBackend } from "../lib/fake";
import type { JobSummary, LiveState, Target } from "../lib/types";

/** The demo's Main Bar (3 registers: one offline, two behind) and a Terrace all well. */
function twoSites(): LiveState {
  const state = demoState();
  const at = new Date().toISOString();
  state.picture.sites["s2"] = {
    id: "s2", name: "Terrace", register_count: 1, catalog_revision: 7, time_zone: "UTC",
    next_scheduled_sync: "2026-12-01T05:30:00Z",
  };
  state.picture.registers["r9"] = {
    ...state.picture.registers["r1"], id: "r9", site_id: "s2", name: "Deck", applied_revision: 7, site_revision: 7,
    last_seen_at: at,
  };
  return state;
}

function part(id: string, siteId: string, group: string, counts: Partial<JobSummary["counts"]>): JobSummary {
  return {
    id, site_id: siteId, kind: "site_online", source: "back_office", requested_by: "Alex Manager", retry_when_free: true,
    created_at: new Date().toISOString(), finished_at: new Date().toISOString(), group: { id: group, jobs: 2 },
    counts: { queued: 0, delivered: 0, waiting: 0, synced: 0, skipped_busy: 0, skipped_offline: 0, expired: 0, failed: 0, ...counts },
  };
}

function target(jobId: string, registerId: string, name: string, state: Target["state"], reason: string | null = null): Target {
  return {
    id: `${jobId}-${registerId}`, job_id: jobId, register_id: registerId, register_name: name, state, revision: 42, reason,
    updated_at: new Date().toISOString(), wait_expires_at: null,
  };
}

describe("the overview of all sites", () => {
  it("lists every site with what needs a look, and opens a site from it", async () => {
    render(App, { backend: fakeBackend(twoSites()) });
    await fireEvent.click(await screen.findByRole("button", { name: /^All sites/ }));
    expect(screen.getByRole("heading", { name: "All sites" })).toBeTruthy();
    const table = screen.getByRole("table");
    const row = (name: string) => table.querySelector<HTMLElement>(`tr[data-site="${name}"]`)!;
    const cells = (name: string) => within(row(name)).getAllByRole("cell").map((c) => c.textContent?.trim());
    expect(cells("Main Bar").slice(0, 4)).toEqual(["3", "2", "2", "0"]);
    expect(cells("Terrace").slice(0, 4)).toEqual(["1", "1", "0", "0"]);
    expect(cells("Terrace")[4]).toMatch(/05:30/);
    expect(document.getElementById("overview-summary")!.textContent!.replace(/\s+/g, " ")).toMatch(
      /2 sites · 4 registers · 3 online · 1 offline · 2 out of date · 0 in trouble · 1 site needs a look/,
    );

    await fireEvent.click(within(row("Terrace")).getByRole("button", { name: "Open Terrace" }));
    expect(screen.getByRole("heading", { name: "Terrace" })).toBeTruthy();
    expect(screen.queryByRole("heading", { name: "All sites" })).toBeNull();
  });

  it("syncs all sites as one, shows each site's part and one history entry", async () => {
    const state = twoSites();
    const backend = fakeBackend(state);
    render(App, { backend });
    await fireEvent.click(await screen.findByRole("button", { name: /^All sites/ }));
    await fireEvent.click(screen.getByLabelText("Also sync offline registers when they reconnect"));
    await fireEvent.click(screen.getByRole("button", { name: "Sync online registers at all sites" }));
    expect(backend.calls).toContain("syncAll queueOffline");
    const card = await screen.findByRole("region", { name: "Result of Sync online registers at all sites" });
    const group = backend.calls.length;

    const next: LiveState = structuredClone(state);
    const bar = part(`job${group}-s1`, "s1", `group${group}`, { synced: 1, failed: 1, awaiting_reconnect: 1 });
    const terrace = part(`job${group}-s2`, "s2", `group${group}`, { synced: 1 });
    next.picture.jobs = { [bar.id]: bar, [terrace.id]: terrace };
    next.picture.targets = {
      [bar.id]: {
        a: target(bar.id, "r1", "Bar 1", "synced"),
        b: target(bar.id, "r2", "Bar 2", "failed", "the register stopped answering"),
        c: target(bar.id, "r3", "Kitchen", "awaiting_reconnect"),
      },
      [terrace.id]: { d: target(terrace.id, "r9", "Deck", "synced") },
    };
    backend.push(next);

    expect(await within(card).findByText(/All sites: 2 synced · 1 offline, syncing when it reconnects · 1 failed/)).toBeTruthy();
    const parts = within(card).getAllByRole("listitem").map((li) => li.textContent?.replace(/\s+/g, " ").trim());
    expect(parts).toEqual([
      "Main Bar: 1 synced · 1 offline, syncing when it reconnects · 1 failed",
      "Terrace: 1 synced",
    ]);
    // The failed register is counted where it is.
    const table = screen.getByRole("table");
    const barRow = table.querySelector<HTMLElement>(`tr[data-site="Main Bar"]`)!;
    expect(within(barRow).getAllByRole("cell")[3].textContent).toBe("1");

    const history = document.getElementById("all-history")!;
    const entries = within(history).getAllByRole("listitem").filter((li) => li.parentElement === history);
    expect(entries).toHaveLength(1);
    expect(entries[0].textContent).toMatch(/Alex Manager · online registers at all 2 sites · 2 synced, 1 queued until they reconnect, 1 failed/);

    await fireEvent.click(within(card).getByRole("button", { name: "Close the result" }));
    expect(screen.queryByRole("region", { name: /at all sites/ })).toBeNull();
  });

  it("is offered only with more than one site", async () => {
    render(App, { backend: fakeBackend() });
    await screen.findByRole("heading", { name: "Main Bar" });
    expect(screen.queryByRole("button", { name: /^All sites/ })).toBeNull();
  });
});
