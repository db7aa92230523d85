// What jsdom lacks and the app's web view has: a ResizeObserver (Svelte's bind:clientHeight uses
// one). Sizes are all zero in jsdom, so an observer that never fires is what it would report.
class NoResize {
  observe() {}
  unobserve() {}
  disconnect() {}
}
globalThis.ResizeObserver ??= NoResize as unknown as typeof ResizeObserver;
