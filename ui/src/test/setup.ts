import { configure } from "@testing-library/svelte";

// What jsdom lacks and the app's web view has: a ResizeObserver (Svelte's bind:clientHeight uses
// one). Sizes are all zero in jsdom, so an observer that never fires is what it would report.
class NoResize {
  observe() {}
  unobserve() {}
  disconnect() {}
}
globalThis.ResizeObserver ??= NoResize as unknown as typeof ResizeObserver;

// A loaded CI machine can take seconds to lay out a 500-register table in jsdom: waiting for
// what a test expects may take that long before it counts as missing (never a timing assertion).
configure({ asyncUtilTimeout: 10_000 });
