// The notebook page: a chat with the model on the Responses API, shown as notebook
// cells, plus cells a person writes and runs by hand in the same container.
//
// Where things live: the conversation in the service's response store (walked back
// through previous_response_id); its head, the cells run by hand, edits and the draft
// in localStorage (store.js); the container's state in the Containers API.

import { ApiError, ServiceUnreachable, containers, listModels, responses } from "./api.js";
import { Cell } from "./cells.js";
import { renderMarkdown } from "./markdown.js";
import * as store from "./store.js";

const $ = (id) => document.getElementById(id);
const CONTAINER_POLL_MS = 10_000;
const PENDING_POLL_MS = 1_500;
// The service runs one model and answers with it whatever the request names; this is
// sent when it does not list its models.
const FALLBACK_MODEL = "default";

const state = {
  conv: null, // {id, title, headResponseId, pendingResponseId, containerId, createdAt, saved}
  local: null, // {handCells, edits, draft}
  cells: new Map(), // key -> Cell
  container: null, // the last container object the service gave
  containerState: "none", // none | starting | running | expired | gone | unknown
  clockOffsetMs: 0, // server clock minus ours, from the Date header
  files: [],
  turn: null, // {controller, responseId, cells: Map} while a model turn streams
  runningCells: 0,
  stickToEnd: true, // follow the notebook's end as it grows
  loadToken: 0, // bumped on every switch of conversation; stale async work checks it
  model: null,
  unreachable: false,
};

// -- small DOM helpers ------------------------------------------------------------------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function announce(text) {
  const node = $("announcer");
  node.textContent = "";
  // A fresh text node after a tick, so screen readers announce repeats too.
  setTimeout(() => (node.textContent = text), 50);
}

function notebook() {
  return $("notebook");
}

function entries() {
  return $("entries");
}

function nearBottom() {
  const nb = notebook();
  return nb.scrollHeight - nb.scrollTop - nb.clientHeight < 80;
}

function appendEntry(node) {
  entries().append(node);
  $("empty-state").hidden = true;
}

function scrollToEnd() {
  state.stickToEnd = true;
  notebook().scrollTop = notebook().scrollHeight;
}

/** Keep the end of the notebook in view while it grows (streamed code, outputs,
 * images that load late), unless the person has scrolled up to read. */
function setUpFollowing() {
  notebook().addEventListener("scroll", () => {
    state.stickToEnd = nearBottom();
  }, { passive: true });
  new ResizeObserver(() => {
    if (state.stickToEnd) notebook().scrollTop = notebook().scrollHeight;
  }).observe(entries());
}

// -- banner: unreachable service, expired container ----------------------------------------

function showBanner(kind, text, actions = []) {
  const banner = $("banner");
  banner.dataset.kind = kind;
  $("banner-text").textContent = text;
  const holder = $("banner-actions");
  holder.replaceChildren();
  for (const [label, handler, primary] of actions) {
    const button = el("button", primary ? "primary" : "", label);
    button.type = "button";
    button.addEventListener("click", handler);
    holder.append(button);
  }
  banner.hidden = false;
}

function hideBanner(kind) {
  const banner = $("banner");
  if (!kind || banner.dataset.kind === kind) banner.hidden = true;
}

function reportError(error, context) {
  if (error instanceof ServiceUnreachable) {
    serviceUnreachable();
    return "The service cannot be reached.";
  }
  if (error instanceof ApiError) {
    if (error.containerGone && context === "container") {
      containerGone(error);
      return error.code === "container_expired"
        ? "The container expired: start a new one from the message above."
        : "The container is gone: start a new one from the message above.";
    }
    return error.message;
  }
  console.error(error);
  return String(error?.message ?? error);
}

function serviceUnreachable() {
  state.unreachable = true;
  showBanner(
    "unreachable",
    "The service cannot be reached. Is it still running? Nothing on this page is lost.",
    [["Try again", () => checkService(true), true]],
  );
  renderContainerBar();
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
  if (state.unreachable) {
    state.unreachable = false;
    hideBanner("unreachable");
    announce("Connected to the service again.");
    if (!state.model) loadModel();
    refreshContainer();
    refreshFiles();
  }
  return true;
}

function containerGone(error) {
  const expired = error?.code === "container_expired";
  const minutes = state.container?.expires_after?.minutes ?? 20;
  state.containerState = expired ? "expired" : "gone";
  showBanner(
    "container",
    expired
      ? `This conversation's container expired after ${minutes} idle minutes: its variables and files are gone. Start a new one to keep working; your cells stay here to run again.`
      : "This conversation's container no longer exists (the service may have been reset). Start a new one to keep working.",
    [["Start a new container", () => startNewContainer(), true]],
  );
  renderContainerBar();
  renderFiles();
}

// -- conversations -------------------------------------------------------------------------

function blankConversation() {
  return {
    id: store.newId("conv"),
    title: "",
    headResponseId: null,
    pendingResponseId: null,
    containerId: null,
    createdAt: Date.now(),
    saved: false,
  };
}

function showTitle() {
  const title = state.conv?.title;
  document.title = title && state.conv.saved ? `${title} · Code Interpreter` : "Code Interpreter";
}

function saveConversation() {
  const conv = state.conv;
  if (!conv.title) conv.title = "Notebook";
  conv.saved = true;
  store.saveConversation(conv);
  store.setCurrentConversationId(conv.id);
  renderConversationList();
  showTitle();
}

function saveLocal() {
  scheduleSave(state.conv.id, state.local);
}

function renderConversationList() {
  showTitle();
  const list = $("conversation-list");
  list.replaceChildren();
  const heads = store.listConversations();
  if (!heads.length) {
    list.append(el("li", "muted small", "Past conversations show here."));
    return;
  }
  for (const head of heads) {
    const item = el("li", "conversation-item");
    const open = el("button", "conversation-open");
    open.type = "button";
    const title = el("span", "conversation-title", head.title || "Notebook");
    const when = el("span", "conversation-when", new Date(head.updatedAt).toLocaleString());
    open.append(title, when);
    if (state.conv && head.id === state.conv.id) open.setAttribute("aria-current", "page");
    open.addEventListener("click", () => {
      closeDrawers();
      if (state.conv?.id !== head.id) openConversation(store.getConversation(head.id));
    });
    const remove = el("button", "conversation-remove", "✕");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove “${head.title || "Notebook"}” from this list`);
    remove.addEventListener("click", () => {
      store.forgetConversation(head.id);
      if (state.conv?.id === head.id) newChat();
      else renderConversationList();
    });
    item.append(open, remove);
    list.append(item);
  }
}

function resetNotebook() {
  state.cells.clear();
  entries().replaceChildren();
  $("empty-state").hidden = false;
  state.stickToEnd = true;
}

function newChat() {
  if (state.turn) stopTurn();
  state.loadToken += 1;
  state.conv = blankConversation();
  state.local = { handCells: [], edits: {}, draft: "" };
  store.setCurrentConversationId(state.conv.id);
  resetNotebook();
  hideBanner("container");
  hideBanner("restore");
  state.container = null;
  state.containerState = "none";
  state.files = [];
  $("composer-input").value = "";
  renderContainerBar();
  renderFiles();
  renderConversationList();
  $("composer-input").focus();
}

async function openConversation(head) {
  if (!head) return newChat();
  if (state.turn) stopTurn();
  const token = ++state.loadToken;
  state.conv = { ...head, saved: true };
  state.local = store.loadLocal(head.id);
  store.setCurrentConversationId(head.id);
  resetNotebook();
  hideBanner("container");
  hideBanner("restore");
  state.container = null;
  state.containerState = head.containerId ? "unknown" : "none";
  state.files = [];
  $("composer-input").value = state.local.draft;
  renderConversationList();
  renderContainerBar();
  renderFiles();
  refreshContainer();
  refreshFiles();
  await restoreNotebook(token);
}

/** Rebuild the notebook: the stored responses in order, each followed by the cells
 * that were added by hand after it. */
async function restoreNotebook(token) {
  const conv = state.conv;
  let chain = [];
  const loading = el("p", "restoring muted", "Loading the conversation…");
  loading.setAttribute("role", "status");
  if (conv.headResponseId || conv.pendingResponseId) appendEntry(loading);
  try {
    chain = await loadChain(conv);
  } catch (error) {
    loading.remove();
    if (token !== state.loadToken) return;
    const message = reportError(error);
    if (!(error instanceof ServiceUnreachable)) {
      showBanner("restore", `This conversation could not be loaded from the service: ${message}`, [
        ["Try again", () => openConversation(store.getConversation(conv.id)), true],
      ]);
    }
    chain = [];
  }
  if (token !== state.loadToken) return;
  loading.remove();

  const byAnchor = new Map();
  for (const record of state.local.handCells) {
    const anchor = record.after ?? "";
    if (!byAnchor.has(anchor)) byAnchor.set(anchor, []);
    byAnchor.get(anchor).push(record);
  }
  const placeHandCells = (anchor) => {
    for (const record of byAnchor.get(anchor) ?? []) appendEntry(handCell(record).element);
    byAnchor.delete(anchor);
  };

  placeHandCells("");
  const seen = new Set();
  for (const { response, inputs } of chain) {
    const group = turnGroup(response.id);
    appendEntry(group);
    // Some stores list the whole history as a response's input: show only what is new.
    let fresh = inputs;
    const lastSeen = inputs.map((item) => seen.has(item.id)).lastIndexOf(true);
    if (lastSeen >= 0) fresh = inputs.slice(lastSeen + 1);
    for (const item of fresh) {
      if (item.id) seen.add(item.id);
      if (item.type === "message" && item.role === "user") group.append(userMessage(textOf(item.content)));
    }
    for (const item of response.output ?? []) {
      if (item.id) seen.add(item.id);
      renderItem(group, item, response);
    }
    finishGroup(group, response);
    placeHandCells(response.id);
  }
  for (const anchor of [...byAnchor.keys()]) placeHandCells(anchor);
  $("empty-state").hidden = entries().children.length > 0;
  scrollToEnd();

  const last = chain.at(-1)?.response;
  if (last && (last.status === "in_progress" || last.status === "queued")) {
    watchPending(token, last.id);
  }
}

async function loadChain(conv) {
  if (conv.pendingResponseId) {
    // A turn was streaming when the page went away: the service kept what it had.
    try {
      const pending = await responses.retrieve(conv.pendingResponseId);
      if (pending.status !== "in_progress" && pending.status !== "queued") {
        conv.headResponseId = pending.id;
        conv.pendingResponseId = null;
      }
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      conv.pendingResponseId = null; // it never reached the store
    }
    store.saveConversation(conv);
  }
  const chain = [];
  let id = conv.pendingResponseId || conv.headResponseId;
  for (let depth = 0; id && depth < 500; depth += 1) {
    const response = await responses.retrieve(id);
    const inputs = await responses.inputItems(id);
    chain.unshift({ response, inputs });
    id = response.previous_response_id;
  }
  return chain;
}

/** A turn that was still running at reload: poll until it ends, then show it whole. */
function watchPending(token, responseId) {
  setProgress("The model is still working on this…");
  const poll = async () => {
    if (token !== state.loadToken) return;
    try {
      const response = await responses.retrieve(responseId);
      if (response.status === "in_progress" || response.status === "queued") {
        setTimeout(poll, PENDING_POLL_MS);
        return;
      }
      state.conv.headResponseId = response.id;
      state.conv.pendingResponseId = null;
      saveConversation();
      setProgress(null);
      openConversation(store.getConversation(state.conv.id));
    } catch (error) {
      setProgress(null);
      reportError(error);
    }
  };
  setTimeout(poll, PENDING_POLL_MS);
}

function textOf(content) {
  if (typeof content === "string") return content;
  return (content ?? []).map((part) => part.text ?? "").join("");
}

// -- notebook entries --------------------------------------------------------------------------

function turnGroup(responseId) {
  const group = el("div", "turn");
  if (responseId) group.dataset.responseId = responseId;
  return group;
}

function userMessage(text) {
  const article = el("article", "msg msg-user");
  article.setAttribute("aria-label", "Your message");
  article.append(el("div", "msg-body", text));
  return article;
}

function reasoningBlock(text = "", streaming = false) {
  const details = el("details", "reasoning");
  const summary = el("summary", "", streaming ? "Thinking…" : "Reasoning");
  if (streaming) summary.classList.add("spinning");
  const body = el("div", "reasoning-text", text);
  details.append(summary, body);
  return details;
}

function assistantMessage() {
  const article = el("article", "msg msg-assistant");
  article.setAttribute("aria-label", "Answer");
  const body = el("div", "markdown");
  const files = el("ul", "citations");
  files.setAttribute("aria-label", "Files in this answer");
  article.append(body, files);
  article._text = "";
  article._annotations = [];
  return article;
}

function renderAnswer(article) {
  const citations = article._annotations.filter((a) => a.type === "container_file_citation");
  const resolveLink = (href) => {
    const cited = /^citation:(\d+)$/.exec(href);
    if (cited) {
      const citation = citations[Number(cited[1])];
      return { href: containers.fileUrl(citation.container_id, citation.file_id), download: citation.filename };
    }
    if (!/^sandbox:/i.test(href)) return null;
    // gpt-oss writes links to its files as sandbox:/mnt/data/NAME.
    const path = href.replace(/^sandbox:/i, "");
    const name = path.split("/").pop();
    const citation = citations.find((c) => c.filename === name);
    if (citation) return { href: containers.fileUrl(citation.container_id, citation.file_id), download: name };
    const file = state.files.find((f) => f.path === path);
    if (file && state.conv.containerId) return { href: containers.fileUrl(state.conv.containerId, file.id), download: name };
    return null;
  };
  const text = linkCitations(article._text, citations);
  article.querySelector(".markdown").replaceChildren(renderMarkdown(text, { resolveLink }));
  const list = article.querySelector(".citations");
  list.replaceChildren();
  const shown = new Set();
  for (const citation of citations) {
    if (shown.has(citation.file_id)) continue;
    shown.add(citation.file_id);
    const item = el("li");
    const link = el("a", "file-chip", citation.filename);
    link.href = containers.fileUrl(citation.container_id, citation.file_id);
    link.download = citation.filename;
    link.title = `Download ${citation.filename}`;
    item.append(link);
    list.append(item);
  }
  list.hidden = shown.size === 0;
}

/** The answer's text with each cited span made a Markdown link to ``citation:N``.
 * Indices count code points, as the server's Python strings do. */
function linkCitations(text, citations) {
  let chars = Array.from(text);
  const order = citations
    .map((citation, index) => ({ citation, index }))
    .filter(({ citation: c }) => Number.isInteger(c.start_index) && c.end_index > c.start_index && c.end_index <= chars.length)
    .sort((a, b) => b.citation.start_index - a.citation.start_index);
  let limit = chars.length;
  for (const { citation, index } of order) {
    const { start_index: start, end_index: end } = citation;
    if (end > limit) continue; // overlaps one already linked
    const before = chars.slice(0, start).join("");
    if (insideCodeOrLink(before)) continue;
    const label = chars.slice(start, end).join("").replace(/[\\`*_[\]]/g, "\\$&");
    chars = [...chars.slice(0, start), `[${label}](citation:${index})`, ...chars.slice(end)];
    limit = start;
  }
  return chars.join("");
}

function insideCodeOrLink(before) {
  const fences = before.split("\n").filter((line) => /^ {0,3}(```|~~~)/.test(line)).length;
  if (fences % 2) return true;
  const line = before.slice(before.lastIndexOf("\n") + 1);
  if ((line.match(/`/g) ?? []).length % 2) return true;
  return /\]\(\s*<?[^)\s]*$|\[[^\]]*$|sandbox:[^\s)]*$/.test(line);
}

function modelCell(item) {
  const edit = state.local.edits[item.id];
  const cell = new Cell({
    origin: "model",
    key: item.id,
    code: edit?.code ?? item.code ?? "",
    outputs: edit?.outputs ?? item.outputs ?? [],
    executionCount: edit?.executionCount ?? null,
    ran: item.status !== undefined && item.status !== "in_progress" && item.status !== "interpreting",
    notice: edit?.notice ?? "",
    run: runCell,
    interrupt: interruptKernel,
    remove: () => {},
    changed: cellChanged,
  });
  if (edit) cell.element.classList.add("is-edited");
  state.cells.set(item.id, cell);
  return cell;
}

function handCell(record) {
  const cell = new Cell({
    origin: "hand",
    key: record.key,
    code: record.code,
    outputs: record.outputs,
    executionCount: record.executionCount,
    notice: record.notice ?? "",
    run: runCell,
    interrupt: interruptKernel,
    remove: removeHandCell,
    changed: cellChanged,
  });
  state.cells.set(record.key, cell);
  return cell;
}

/** One finished output item of a stored response. */
function renderItem(group, item, response) {
  if (item.type === "reasoning") {
    const text = (item.content ?? []).map((c) => c.text ?? "").join("") ||
      (item.summary ?? []).map((s) => s.text ?? "").join("");
    if (text) group.append(reasoningBlock(text));
  } else if (item.type === "code_interpreter_call") {
    const cell = modelCell(item);
    group.append(cell.element);
    if (item.status === "failed" || item.status === "incomplete") {
      cell.setNotice(item.status === "failed" ? "This call failed." : "This call did not finish.");
    }
  } else if (item.type === "message") {
    const article = assistantMessage();
    for (const part of item.content ?? []) {
      if (part.type === "output_text") {
        article._text += part.text ?? "";
        article._annotations.push(...(part.annotations ?? []));
      } else if (part.type === "refusal") {
        article._text += part.refusal ?? "";
      }
    }
    renderAnswer(article);
    group.append(article);
  }
  void response;
}

function finishGroup(group, response) {
  if (response.status === "failed" || response.error) {
    group.append(el("p", "turn-error", `The model could not finish: ${response.error?.message ?? "failed"}`));
  } else if (response.status === "incomplete") {
    const reason = response.incomplete_details?.reason;
    group.append(
      el("p", "turn-notice", `The answer stopped early${reason ? ` (${reason.replaceAll("_", " ")})` : ""}.`),
    );
  } else if (response.status === "cancelled") {
    group.append(el("p", "turn-notice", "Stopped before the answer was finished."));
  }
}

// -- cells run by hand ---------------------------------------------------------------------------

function addHandCell(code = "") {
  const record = {
    key: store.newId("cell"),
    after: state.conv.pendingResponseId || state.conv.headResponseId || null,
    code,
    outputs: [],
    executionCount: null,
  };
  state.local.handCells.push(record);
  if (!state.conv.saved) saveConversation();
  saveLocal();
  const cell = handCell(record);
  appendEntry(cell.element);
  scrollToEnd();
  cell.focus();
  return cell;
}

function removeHandCell(cell) {
  const next = cell.element.nextElementSibling?.querySelector?.("textarea") ?? $("add-cell");
  state.local.handCells = state.local.handCells.filter((r) => r.key !== cell.key);
  state.cells.delete(cell.key);
  cell.element.remove();
  saveLocal();
  next.focus();
  if (!entries().children.length) $("empty-state").hidden = false;
}

function cellChanged(cell) {
  persistCell(cell, { soon: true });
}

/** Save a cell's code and outputs with its conversation's local state (which may no
 * longer be the open one, when a run ends after a switch). */
function persistCell(cell, { soon = false, conv = state.conv, local = state.local } = {}) {
  const snapshot = {
    code: cell.code,
    outputs: cell.outputs,
    executionCount: cell.executionCount,
    notice: cell.noticeNode.textContent,
  };
  if (cell.origin === "hand") {
    const record = local.handCells.find((r) => r.key === cell.key);
    if (!record) return;
    Object.assign(record, snapshot);
  } else {
    local.edits[cell.key] = snapshot;
    cell.element.classList.add("is-edited");
  }
  scheduleSave(conv.id, local, soon ? 300 : 0);
}

const pendingSaves = new Map(); // conversation id -> {timer, local}

/** Save one conversation's local state now, or after ``delayMs`` of quiet (typing). */
function scheduleSave(convId, local, delayMs = 0) {
  clearTimeout(pendingSaves.get(convId)?.timer);
  pendingSaves.delete(convId);
  if (!delayMs) {
    store.saveLocal(convId, local);
    return;
  }
  const timer = setTimeout(() => scheduleSave(convId, local), delayMs);
  pendingSaves.set(convId, { timer, local });
}

/** Write what is still waiting to be saved (the page is going away). */
function flushSaves() {
  for (const [convId, { local }] of [...pendingSaves]) scheduleSave(convId, local);
}

async function runCell(cell) {
  if (cell.state !== "idle") return;
  const conv = state.conv;
  const local = state.local;
  let containerId;
  try {
    containerId = await ensureContainer();
  } catch (error) {
    cell.setNotice(reportError(error, "container"));
    return;
  }
  if (conv !== state.conv) return;
  // The old outputs stay, dimmed, until the new ones come: if the run never starts
  // (the service is down), nothing is lost.
  let fresh = false;
  const startFresh = () => {
    if (!fresh) cell.output.clear();
    fresh = true;
  };
  cell.output.element.classList.add("is-stale");
  cell.setNotice("");
  cell.setState("running");
  state.runningCells += 1;
  renderContainerBar();
  try {
    const summary = await containers.execute(containerId, cell.code, (output) => {
      startFresh();
      cell.output.add(output);
    });
    startFresh();
    cell.setExecutionCount(summary.execution_count);
    cell.setNotice(executionNotice(summary));
    announce(summary.status === "ok" ? "Cell finished." : `Cell ended: ${summary.status}.`);
  } catch (error) {
    cell.setNotice(reportError(error, "container"));
  } finally {
    state.runningCells -= 1;
    cell.output.element.classList.remove("is-stale");
    cell.setState("idle");
    persistCell(cell, { conv, local });
    if (conv === state.conv) {
      refreshContainer();
      refreshFiles();
    }
  }
}

function executionNotice(summary) {
  const notes = [];
  if (summary.status === "timeout") notes.push("Stopped: the cell ran past its time limit; variables are kept.");
  if (summary.status === "died") notes.push("The kernel died (out of memory?) and was restarted: earlier variables are gone.");
  if (summary.notice) notes.push(summary.notice);
  else if (summary.kernel_restarted && summary.status !== "died") notes.push("The kernel had restarted before this ran: earlier variables are gone.");
  if (summary.truncated) notes.push("Output was cut because it was too long.");
  return notes.join(" ");
}

// -- the container ---------------------------------------------------------------------------

/** The conversation's container id, starting one if it has none yet. */
async function ensureContainer() {
  const conv = state.conv;
  if (conv.containerId && (state.containerState === "expired" || state.containerState === "gone")) {
    throw new Error("This conversation's container is gone: start a new one from the message above.");
  }
  if (conv.containerId) return conv.containerId;
  state.containerState = "starting";
  renderContainerBar();
  try {
    const container = await containers.create(conv.title && conv.title !== "Notebook" ? conv.title.slice(0, 60) : "notebook");
    if (conv !== state.conv) return container.id;
    adoptContainer(container.id, container);
    return container.id;
  } catch (error) {
    state.containerState = "none";
    renderContainerBar();
    throw error;
  }
}

function adoptContainer(id, container = null) {
  const conv = state.conv;
  if (conv.containerId !== id) {
    conv.containerId = id;
    if (!conv.saved) saveConversation();
    else store.saveConversation(conv);
  }
  if (container) {
    state.container = container;
    state.containerState = "running";
  }
  hideBanner("container");
  renderContainerBar();
  refreshContainer();
  refreshFiles();
}

async function startNewContainer() {
  state.conv.containerId = null;
  state.containerState = "none";
  state.container = null;
  try {
    await ensureContainer();
    announce("A new container is running.");
    refreshFiles();
  } catch (error) {
    const message = reportError(error);
    showBanner("container", `Could not start a container: ${message}`, [
      ["Try again", () => startNewContainer(), true],
    ]);
  }
}

let refreshing = null;
async function refreshContainer() {
  const conv = state.conv;
  if (!conv?.containerId) {
    renderContainerBar();
    return;
  }
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const { body, date } = await containers.retrieve(conv.containerId);
      if (conv !== state.conv || body.id !== conv.containerId) return;
      state.container = body;
      state.containerState = body.status === "running" ? "running" : body.status;
      if (date) state.clockOffsetMs = Date.parse(date) - Date.now();
      if (state.unreachable) checkService();
      hideBanner("container");
    } catch (error) {
      if (conv !== state.conv) return;
      if (error instanceof ApiError && error.containerGone) containerGone(error);
      else reportError(error);
    } finally {
      refreshing = null;
      renderContainerBar();
    }
  })();
  return refreshing;
}

function busy() {
  return state.runningCells > 0 || Boolean(state.turn);
}

function renderContainerBar() {
  const conv = state.conv;
  const container = state.container;
  const status = $("container-status");
  const id = $("container-id");
  id.textContent = conv?.containerId ?? "none yet";
  id.title = conv?.containerId ?? "A container starts when code first runs or a file is added.";
  let shown = state.containerState;
  if (state.unreachable && conv?.containerId) shown = "unknown";
  const labels = {
    none: "not started",
    starting: "starting…",
    running: busy() ? "busy" : "running",
    expired: "expired",
    gone: "gone",
    unknown: "unknown",
  };
  status.dataset.status = shown === "running" && busy() ? "busy" : shown;
  status.textContent = labels[shown] ?? shown;
  $("container-memory").textContent = formatMemory(container?.memory_limit);
  renderIdle();
  const live = Boolean(conv?.containerId) && state.containerState === "running";
  $("interrupt-kernel").disabled = !live;
  $("restart-kernel").disabled = !live;
}

function renderIdle() {
  const node = $("container-idle");
  const container = state.container;
  if (!container || state.containerState !== "running" || state.unreachable) {
    node.textContent = state.containerState === "expired" ? "0:00" : "–";
    return;
  }
  const total = (container.expires_after?.minutes ?? 20) * 60;
  const totalText = formatDuration(total);
  if (busy()) {
    node.textContent = `${totalText} of ${totalText} (in use)`;
    return;
  }
  const now = (Date.now() + state.clockOffsetMs) / 1000;
  const left = Math.max(0, container.last_active_at + total - now);
  node.textContent = `${formatDuration(Math.min(left, total))} of ${totalText}`;
}

function formatMemory(limit) {
  const match = /^(\d+)([kmg])$/i.exec(limit ?? "");
  if (!match) return limit ?? "–";
  return `${match[1]} ${{ k: "KB", m: "MB", g: "GB" }[match[2].toLowerCase()]}`;
}

function formatDuration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

const INTERRUPT_RETRIES = 3;
const INTERRUPT_RETRY_MS = 1_000;

/** Interrupt the kernel. An interrupt that lands before the kernel has begun the code
 * (a click right after Run) is lost, so it is sent again while the cell still runs. */
async function interruptKernel(cell = null) {
  const conv = state.conv;
  const id = conv?.containerId;
  if (!id) return;
  const stillRunning = () =>
    state.conv === conv &&
    (cell ? cell.state === "running" : state.runningCells > 0 || Boolean(state.turn));
  try {
    await containers.interrupt(id);
    announce("Interrupt sent.");
    for (let attempt = 0; attempt < INTERRUPT_RETRIES; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, INTERRUPT_RETRY_MS));
      if (!stillRunning()) return;
      await containers.interrupt(id);
    }
  } catch (error) {
    reportError(error, "container");
  }
}

async function restartKernel() {
  const id = state.conv?.containerId;
  if (!id) return;
  const button = $("restart-kernel");
  button.disabled = true;
  try {
    await containers.restart(id);
    announce("The kernel restarted: variables are cleared.");
    toast("Kernel restarted: variables are cleared, files are kept.");
  } catch (error) {
    toast(`Could not restart: ${reportError(error, "container")}`);
  } finally {
    renderContainerBar();
    refreshContainer();
  }
}

function toast(text) {
  const bar = $("bar-status");
  bar.textContent = text;
  bar.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (bar.hidden = true), 5000);
}

// -- files ---------------------------------------------------------------------------------

async function refreshFiles() {
  const conv = state.conv;
  if (!conv?.containerId || state.containerState === "expired" || state.containerState === "gone") {
    state.files = [];
    renderFiles();
    return;
  }
  try {
    const files = await containers.listFiles(conv.containerId);
    if (conv !== state.conv) return;
    state.files = files;
  } catch (error) {
    if (conv !== state.conv) return;
    if (error instanceof ApiError && error.containerGone) containerGone(error);
    else reportError(error);
  }
  renderFiles();
}

function renderFiles() {
  const list = $("file-list");
  list.replaceChildren();
  const conv = state.conv;
  if (!conv?.containerId) {
    list.append(el("li", "muted", "No container yet: adding a file starts one."));
    return;
  }
  if (state.containerState === "expired" || state.containerState === "gone") {
    list.append(el("li", "muted", "The container is gone, and its files with it."));
    return;
  }
  if (!state.files.length) {
    list.append(el("li", "muted", "No files yet."));
    return;
  }
  const sorted = [...state.files].sort((a, b) => a.path.localeCompare(b.path));
  for (const file of sorted) {
    const name = file.path.replace(/^\/mnt\/data\//, "");
    const item = el("li", "file-item");
    const link = el("a", "file-name", name);
    link.href = containers.fileUrl(conv.containerId, file.id);
    link.download = name.split("/").pop();
    link.title = `Download ${file.path}`;
    const size = el("span", "file-size", formatBytes(file.bytes));
    item.append(link, size);
    list.append(item);
  }
}

function formatBytes(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function uploadFiles(fileList) {
  const files = [...fileList];
  if (!files.length) return;
  const status = $("upload-status");
  let containerId;
  try {
    containerId = await ensureContainer();
  } catch (error) {
    status.textContent = `Could not upload: ${reportError(error, "container")}`;
    return;
  }
  const done = [];
  for (const file of files) {
    status.textContent = `Uploading ${file.name}…`;
    try {
      const record = await containers.upload(containerId, file);
      done.push(record.path);
    } catch (error) {
      status.textContent = `Could not upload ${file.name}: ${reportError(error, "container")}`;
      await refreshFiles();
      return;
    }
  }
  status.textContent = `Uploaded to ${done.join(", ")}`;
  announce(status.textContent);
  await refreshFiles();
}

// -- the model -------------------------------------------------------------------------------

async function loadModel() {
  try {
    const models = await listModels();
    state.model = models[0]?.id ?? null;
  } catch (error) {
    if (error instanceof ServiceUnreachable) serviceUnreachable();
    state.model = null;
  }
}

function setProgress(text) {
  const node = $("turn-progress");
  node.hidden = !text;
  if (text) $("turn-progress-text").textContent = text;
}

function setTurnControls(streaming) {
  $("send").hidden = streaming;
  $("stop-turn").hidden = !streaming;
}

async function sendMessage(text) {
  const conv = state.conv;
  if (state.turn) return;
  if (!conv.title || conv.title === "Notebook") conv.title = text.replace(/\s+/g, " ").slice(0, 60);
  saveConversation();
  const group = turnGroup(null);
  group.append(userMessage(text));
  appendEntry(group);
  scrollToEnd();

  const turn = { controller: new AbortController(), responseId: null, items: new Map(), group, conv };
  state.turn = turn;
  setTurnControls(true);
  setProgress("Thinking…");
  announce("The model is working.");
  renderContainerBar();

  // An expired container cannot take the turn: then the service starts a new one
  // (and tells the model), so learn the container's state first.
  if (conv.containerId) await refreshContainer();
  const containerUsable = conv.containerId && !["expired", "gone"].includes(state.containerState);
  const request = {
    model: state.model ?? FALLBACK_MODEL,
    input: text,
    tools: [{ type: "code_interpreter", container: containerUsable ? conv.containerId : { type: "auto" } }],
    include: ["code_interpreter_call.outputs"],
    store: true,
  };
  if (conv.headResponseId) request.previous_response_id = conv.headResponseId;
  let final = null;
  try {
    await responses.stream(request, (type, data) => {
      if (state.turn !== turn) return;
      final = onTurnEvent(turn, type, data) ?? final;
    }, { signal: turn.controller.signal });
    if (!final && state.turn === turn) throw new ServiceUnreachable(new Error("the stream ended early"));
  } catch (error) {
    if (error.name === "AbortError") {
      group.append(el("p", "turn-notice", "Stopped."));
      await settleAfterStop(turn);
    } else {
      const message = reportError(error, "container");
      if (!turn.responseId) {
        // Nothing reached the store: give the words back so nothing is lost.
        group.remove();
        const input = $("composer-input");
        if (!input.value.trim()) input.value = text;
        state.local.draft = input.value;
        saveLocal();
        if (!(error instanceof ApiError && error.containerGone)) {
          showTurnError(`Your message was not sent: ${message}`);
        }
      } else {
        group.append(el("p", "turn-error", `The turn broke off: ${message}`));
      }
    }
  } finally {
    if (state.turn === turn) {
      state.turn = null;
      setTurnControls(false);
      setProgress(null);
      for (const entry of turn.items.values()) {
        if (entry.cell && entry.cell.state !== "idle") entry.cell.setState("idle");
      }
      renderContainerBar();
      refreshContainer();
      refreshFiles();
    }
  }
}

function showTurnError(text) {
  if (state.unreachable) return; // the banner already says so
  showBanner("turn", text, [["Dismiss", () => hideBanner("turn"), false]]);
}

/** Handle one stream event; returns the final response object when the turn ends. */
function onTurnEvent(turn, type, data) {
  const { group, conv } = turn;
  const entry = data.item_id ? turn.items.get(data.item_id) : null;
  switch (type) {
    case "response.created":
    case "response.in_progress":
      if (!turn.responseId && data.response?.id) {
        turn.responseId = data.response.id;
        group.dataset.responseId = turn.responseId;
        conv.pendingResponseId = turn.responseId;
        store.saveConversation(conv);
      }
      break;
    case "response.output_item.added": {
      const item = data.item;
      if (item.type === "reasoning") {
        const node = reasoningBlock("", true);
        group.append(node);
        turn.items.set(item.id, { node, text: "" });
        setProgress("Thinking…");
      } else if (item.type === "code_interpreter_call") {
        const cell = modelCell({ ...item, code: item.code ?? "", outputs: [] });
        cell.setState("writing");
        group.append(cell.element);
        turn.items.set(item.id, { cell });
        if (item.container_id) adoptContainer(item.container_id);
        setProgress("Writing code…");
      } else if (item.type === "message") {
        const node = assistantMessage();
        node.classList.add("is-streaming");
        group.append(node);
        turn.items.set(item.id, { node });
        setProgress("Writing the answer…");
      }
      break;
    }
    case "response.reasoning_text.delta":
    case "response.reasoning_summary_text.delta":
      if (entry?.node) {
        entry.text += data.delta ?? "";
        entry.node.querySelector(".reasoning-text").textContent = entry.text;
      }
      break;
    case "response.code_interpreter_call_code.delta":
      entry?.cell?.appendCode(data.delta ?? "");
      break;
    case "response.code_interpreter_call_code.done":
      if (entry?.cell && typeof data.code === "string") entry.cell.setCode(data.code);
      break;
    case "response.code_interpreter_call.interpreting":
      entry?.cell?.setState("running");
      setProgress("Running code…");
      break;
    case "response.code_interpreter_call.completed":
      entry?.cell?.setState("idle");
      setProgress("Thinking…");
      break;
    case "response.output_text.delta":
      if (entry?.node) {
        entry.node._text += data.delta ?? "";
        scheduleAnswerRender(entry.node);
      }
      break;
    case "response.output_text.annotation.added":
      if (entry?.node && data.annotation) {
        entry.node._annotations.push(data.annotation);
        scheduleAnswerRender(entry.node);
      }
      break;
    case "response.output_text.done":
      if (entry?.node && typeof data.text === "string") {
        entry.node._text = data.text;
        scheduleAnswerRender(entry.node);
      }
      break;
    case "response.output_item.done":
      finishItem(turn, data.item);
      break;
    case "response.completed":
    case "response.incomplete":
    case "response.failed": {
      const response = data.response;
      // Even a failed turn is the conversation's head: the next one continues after it.
      conv.headResponseId = response.id;
      conv.pendingResponseId = null;
      store.saveConversation(conv);
      renderConversationList();
      finishGroup(group, response);
      announce(response.status === "completed" ? "The answer is ready." : `The turn ended: ${response.status}.`);
      return response;
    }
    case "error": {
      const message = data.message ?? data.error?.message ?? "The service reported an error.";
      group.append(el("p", "turn-error", message));
      if (data.code === "container_expired") containerGone({ code: data.code });
      return { status: "failed" };
    }
    default:
      break;
  }
  return null;
}

function finishItem(turn, item) {
  const entry = turn.items.get(item.id);
  if (!entry) {
    renderItem(turn.group, item, null);
    return;
  }
  if (item.type === "reasoning" && entry.node) {
    const summary = entry.node.querySelector("summary");
    summary.textContent = "Reasoning";
    summary.classList.remove("spinning");
    const text = (item.content ?? []).map((c) => c.text ?? "").join("");
    if (text) entry.node.querySelector(".reasoning-text").textContent = text;
  } else if (item.type === "code_interpreter_call" && entry.cell) {
    const cell = entry.cell;
    if (typeof item.code === "string") cell.setCode(item.code);
    cell.output.setAll(item.outputs ?? []);
    cell.markRan();
    cell.setState("idle");
    if (item.status === "failed") cell.setNotice("This call failed.");
    else if (item.status === "incomplete") cell.setNotice("This call did not finish.");
    if (item.container_id) adoptContainer(item.container_id);
  } else if (item.type === "message" && entry.node) {
    entry.node._text = "";
    entry.node._annotations = [];
    for (const part of item.content ?? []) {
      if (part.type === "output_text") {
        entry.node._text += part.text ?? "";
        entry.node._annotations.push(...(part.annotations ?? []));
      }
    }
    entry.node.classList.remove("is-streaming");
    renderAnswer(entry.node);
  }
}

const pendingRenders = new Set();
function scheduleAnswerRender(node) {
  if (!pendingRenders.size) {
    requestAnimationFrame(() => {
      for (const n of pendingRenders) renderAnswer(n);
      pendingRenders.clear();
    });
  }
  pendingRenders.add(node);
}

function stopTurn() {
  const turn = state.turn;
  if (!turn) return;
  const running = [...turn.items.values()].some((e) => e.cell?.state === "running");
  turn.controller.abort();
  if (running && turn.conv.containerId) containers.interrupt(turn.conv.containerId).catch(() => {});
}

/** After the person stops a turn: keep what the store kept of it, if anything. */
async function settleAfterStop(turn) {
  const conv = turn.conv;
  if (!turn.responseId) return;
  try {
    const response = await responses.retrieve(turn.responseId);
    if (response.status !== "in_progress" && response.status !== "queued") {
      conv.headResponseId = response.id;
      conv.pendingResponseId = null;
    }
  } catch {
    conv.pendingResponseId = null;
  }
  store.saveConversation(conv);
}

// -- drawers, drag and drop, keyboard ---------------------------------------------------------

function toggleDrawer(id, open) {
  const drawer = $(id);
  const toggle = document.querySelector(`[aria-controls="${id}"]`);
  const show = open ?? !drawer.classList.contains("open");
  drawer.classList.toggle("open", show);
  toggle.setAttribute("aria-expanded", String(show));
  if (show) {
    for (const other of document.querySelectorAll(".drawer.open")) {
      if (other.id !== id) toggleDrawer(other.id, false);
    }
    drawer.querySelector("button, [href], input, label")?.focus();
  }
}

function closeDrawers() {
  for (const drawer of document.querySelectorAll(".drawer.open")) toggleDrawer(drawer.id, false);
}

function setUpDragAndDrop() {
  const overlay = $("drop-overlay");
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    overlay.hidden = false;
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) overlay.hidden = true;
  });
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    overlay.hidden = true;
    uploadFiles(event.dataTransfer.files);
  });
}

function setUp() {
  const input = $("composer-input");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || state.turn) return;
    input.value = "";
    state.local.draft = "";
    saveLocal();
    sendMessage(text);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    state.local.draft = input.value;
    scheduleSave(state.conv.id, state.local, 300);
  });
  $("stop-turn").addEventListener("click", stopTurn);
  $("add-cell").addEventListener("click", () => addHandCell());
  $("attach-file").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (event) => {
    uploadFiles(event.target.files);
    event.target.value = "";
  });
  $("refresh-files").addEventListener("click", refreshFiles);
  $("new-chat").addEventListener("click", () => {
    closeDrawers();
    newChat();
  });
  $("interrupt-kernel").addEventListener("click", () => interruptKernel());
  const dialog = $("restart-dialog");
  $("restart-kernel").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "restart") restartKernel();
    $("restart-kernel").focus();
  });
  $("toggle-sidebar").addEventListener("click", () => toggleDrawer("sidebar"));
  $("toggle-files").addEventListener("click", () => toggleDrawer("files-panel"));
  for (const close of document.querySelectorAll("[data-close]")) {
    close.addEventListener("click", () => {
      toggleDrawer(close.dataset.close, false);
      document.querySelector(`[aria-controls="${close.dataset.close}"]`).focus();
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.querySelector(".drawer.open") && !dialog.open) {
      const open = document.querySelector(".drawer.open");
      toggleDrawer(open.id, false);
      document.querySelector(`[aria-controls="${open.id}"]`).focus();
    }
  });
  setUpDragAndDrop();
  setUpFollowing();
  // Leaving the page ends a streaming turn (the service stops what nobody reads):
  // ask first. What already happened is kept either way.
  window.addEventListener("pagehide", flushSaves);
  window.addEventListener("beforeunload", (event) => {
    if (state.turn) event.preventDefault();
  });
  window.addEventListener("online", () => checkService());
  setInterval(renderIdle, 1000);
  setInterval(() => {
    if (state.unreachable) checkService();
    else if (state.conv?.containerId && !["expired", "gone"].includes(state.containerState)) refreshContainer();
  }, CONTAINER_POLL_MS);
}

async function main() {
  setUp();
  loadModel();
  const currentId = store.currentConversationId();
  const current = store.getConversation(currentId);
  if (current) {
    await openConversation(current);
  } else {
    newChat();
    // A new chat with only a draft in it is not listed yet; keep the draft.
    const local = currentId ? store.loadLocal(currentId) : null;
    if (local?.draft) {
      state.conv.id = currentId;
      state.local = local;
      store.setCurrentConversationId(currentId);
      $("composer-input").value = local.draft;
    }
  }
  checkService();
}

main();
