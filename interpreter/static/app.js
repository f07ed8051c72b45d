// The notebook page: a chat with the model on the Responses API, shown as notebook
// cells, plus cells a person writes and runs by hand in the same container.
//
// This module wires the parts together and owns what they share (``ctx``):
//   conversation.js  the conversation store (browser side) and the list of them
//   chat.js          sending, streaming, stopping, editing; loading a conversation
//   turns.js         one turn on the page (one path for stored and streamed items)
//   notebook.js      cells in order: select, insert, move, delete, run, run all
//   cells.js         one cell · outputs.js its outputs · completion.js Tab and Shift+Tab
//   keyboard.js      every key · container.js the container bar
//   files.js         the files panel and attachments · variables.js the inspector
//   sidebar.js       the conversation list

import { ApiError, ServiceUnreachable, listModels } from "./api.js";
import { Chat } from "./chat.js";
import { ContainerBar } from "./container.js";
import { Completer } from "./completion.js";
import { ConversationStore, LocalState } from "./conversation.js";
import { FilesPanel } from "./files.js";
import { installKeyboard } from "./keyboard.js";
import { Notebook } from "./notebook.js";
import { Sidebar } from "./sidebar.js";
import { $, announce, hideBanner, showBanner } from "./ui.js";
import { VariablesPanel } from "./variables.js";

const CONTAINER_POLL_MS = 10_000;

const ctx = {
  model: null,
  unreachable: false,
  loadToken: 0, // bumped on every switch of conversation; stale async work checks it
  stickToEnd: true, // follow the notebook's end as it grows

  /** A message for ``error``; banners for an unreachable service or a gone container. */
  report(error, context) {
    if (error instanceof ServiceUnreachable) {
      serviceUnreachable();
      return "The service cannot be reached.";
    }
    if (error instanceof ApiError) {
      if (error.containerGone && context === "container") {
        ctx.container.gone(error);
        return error.code === "container_expired"
          ? "The container expired: start a new one from the message above."
          : "The container is gone: start a new one from the message above.";
      }
      return error.message;
    }
    console.error(error);
    return String(error?.message ?? error);
  },

  /** The service answered after all. */
  serviceAnswered() {
    if (ctx.unreachable) checkService();
  },

  /** Code ran: what the kernel holds may have changed. */
  kernelChanged() {
    ctx.container.refresh();
    ctx.files.refresh();
    ctx.variables.refresh();
  },

  async openConversation(id) {
    if (ctx.chat.turn) ctx.chat.stop();
    const token = ++ctx.loadToken;
    if (!ctx.store.open(id)) {
      ctx.newChat();
      return;
    }
    ctx.container.reset(Boolean(ctx.store.head.containerId));
    resetPage();
    $("composer-input").value = ctx.store.local.draft;
    ctx.files.renderPending();
    ctx.container.refresh();
    ctx.files.refresh();
    ctx.variables.refresh();
    await ctx.chat.restore(token);
  },

  newChat() {
    if (ctx.chat.turn) ctx.chat.stop();
    ctx.loadToken += 1;
    ctx.store.startNew();
    ctx.container.reset(false);
    resetPage();
    $("composer-input").value = "";
    ctx.files.renderPending();
    $("composer-input").focus();
  },

  scrollToEnd() {
    ctx.stickToEnd = true;
    $("notebook").scrollTop = $("notebook").scrollHeight;
  },

  toggleDrawer,
  closeDrawers,
  drawerOpener,
};

function resetPage() {
  hideBanner("container");
  hideBanner("restore");
  hideBanner("turn");
  ctx.notebook.reset();
  ctx.chat.reset();
  ctx.files.reset();
  ctx.variables.reset();
  ctx.stickToEnd = true;
}

// -- the service -----------------------------------------------------------------------------

function serviceUnreachable() {
  ctx.unreachable = true;
  showBanner("unreachable", "The service cannot be reached. Is it still running? Nothing on this page is lost.", [
    ["Try again", () => checkService(true), true],
  ]);
  ctx.container.render();
}

async function checkService(fromButton = false) {
  try {
    const response = await fetch("/healthz", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
  } catch {
    if (fromButton) announce("Still cannot reach the service.");
    serviceUnreachable();
    return false;
  }
  if (ctx.unreachable) {
    ctx.unreachable = false;
    hideBanner("unreachable");
    announce("Connected to the service again.");
    if (!ctx.model) loadModel();
    ctx.container.refresh();
    ctx.files.refresh();
  }
  return true;
}

async function loadModel() {
  try {
    const models = await listModels();
    ctx.model = models[0]?.id ?? null;
  } catch (error) {
    if (error instanceof ServiceUnreachable) serviceUnreachable();
    ctx.model = null;
  }
}

// -- drawers (narrow windows) ------------------------------------------------------------------

/** Open or close a drawer; ``opener`` is the button that opened it (focus goes back
 * there when it closes), ``focus`` a section inside it to show. */
function toggleDrawer(id, open, focus = null, opener = null) {
  const drawer = $(id);
  const show = open ?? !drawer.classList.contains("open");
  if (opener) drawer.dataset.opener = opener.id;
  drawer.classList.toggle("open", show);
  for (const toggle of document.querySelectorAll(`[aria-controls="${id}"]`)) {
    toggle.setAttribute("aria-expanded", String(show));
  }
  if (show) {
    for (const other of document.querySelectorAll(".drawer.open")) {
      if (other.id !== id) toggleDrawer(other.id, false);
    }
    const target = focus ? drawer.querySelector(focus) : null;
    target?.scrollIntoView({ block: "start" });
    (target?.querySelector("button, [href], input, label") ?? drawer.querySelector("button, [href], input, label"))?.focus();
  }
}

/** The button to give the focus back to when a drawer closes. */
function drawerOpener(id) {
  const opener = $(id).dataset.opener;
  return (opener && $(opener)) || document.querySelector(`[aria-controls="${id}"]`);
}

function closeDrawers() {
  for (const drawer of document.querySelectorAll(".drawer.open")) toggleDrawer(drawer.id, false);
}

/** Keep the end of the notebook in view while it grows (streamed code, outputs,
 * images that load late), unless the person has scrolled up to read. */
function setUpFollowing() {
  const notebook = $("notebook");
  notebook.addEventListener(
    "scroll",
    () => {
      ctx.stickToEnd = notebook.scrollHeight - notebook.scrollTop - notebook.clientHeight < 80;
    },
    { passive: true },
  );
  new ResizeObserver(() => {
    // Not while a cell above the last is being edited: the page must not move under it.
    const focused = document.activeElement?.closest?.(".cell");
    const last = ctx.notebook.lastCell()?.element;
    if (ctx.stickToEnd && (!focused || focused === last)) notebook.scrollTop = notebook.scrollHeight;
  }).observe($("entries"));
}

function setUp() {
  ctx.store = new ConversationStore();
  ctx.notebook = new Notebook(ctx);
  ctx.chat = new Chat(ctx);
  ctx.container = new ContainerBar(ctx);
  ctx.files = new FilesPanel(ctx);
  ctx.variables = new VariablesPanel(ctx);
  ctx.sidebar = new Sidebar(ctx);
  ctx.completer = new Completer(ctx);
  installKeyboard(ctx);

  $("add-cell").addEventListener("click", () => ctx.notebook.addCell());
  $("add-markdown").addEventListener("click", () => ctx.notebook.addCell({ kind: "markdown" }));
  $("new-chat").addEventListener("click", () => {
    closeDrawers();
    ctx.newChat();
  });
  $("toggle-sidebar").addEventListener("click", (event) => toggleDrawer("sidebar", undefined, null, event.currentTarget));
  $("toggle-files").addEventListener("click", (event) =>
    toggleDrawer("side-panel", undefined, "#files-section", event.currentTarget),
  );
  $("toggle-variables").addEventListener("click", (event) =>
    toggleDrawer("side-panel", undefined, "#variables-section", event.currentTarget),
  );
  for (const close of document.querySelectorAll("[data-close]")) {
    close.addEventListener("click", () => {
      toggleDrawer(close.dataset.close, false);
      drawerOpener(close.dataset.close).focus();
    });
  }
  $("image-viewer-close").addEventListener("click", () => $("image-viewer").close());
  setUpFollowing();
  // Leaving the page ends a streaming turn (the service stops what nobody reads):
  // ask first. What already happened is kept either way.
  window.addEventListener("pagehide", () => LocalState.flushAll());
  window.addEventListener("beforeunload", (event) => {
    if (ctx.chat.turn) event.preventDefault();
  });
  window.addEventListener("online", () => checkService());
  setInterval(() => {
    if (ctx.unreachable) checkService();
    else if (ctx.container.usable) ctx.container.refresh();
  }, CONTAINER_POLL_MS);
}

async function main() {
  setUp();
  loadModel();
  const lastId = ctx.store.lastOpenedId();
  if (lastId && ctx.store.list().some((head) => head.id === lastId)) {
    await ctx.openConversation(lastId);
  } else {
    ctx.newChat();
    ctx.store.adoptUnlistedDraft();
    $("composer-input").value = ctx.store.local.draft;
    ctx.files.renderPending();
  }
  checkService();
}

main();
