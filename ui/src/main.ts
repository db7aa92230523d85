import { mount } from "svelte";
import App from "./App.svelte";
import { tauriBackend } from "./lib/backend";
import { fakeBackend } from "./lib/fake";

// In the app, Tauri injects its bridge; in a plain browser (development, screenshots) the page
// runs on the fake backend so it can be seen and clicked without Back Office.
const inTauri = "__TAURI_INTERNALS__" in window;
const backend = inTauri ? tauriBackend() : fakeBackend();

mount(App, { target: document.getElementById("app")!, props: { backend } });
