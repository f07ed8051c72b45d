// What the page remembers in localStorage. The conversation itself lives in the
// service's response store; here are only its heads (last response id, container id,
// title) and what the store does not hold: cells run by hand, edits to the model's
// cells and their execution counts, attachments, and an unsent draft.

const INDEX_KEY = "ci.conversations.v1";
const CURRENT_KEY = "ci.current.v1";
const LOCAL_PREFIX = "ci.conversation.v1.";
// Images make saved outputs big; past this many characters per conversation the
// oldest images are dropped from what is saved (the cell says so when restored).
const MAX_LOCAL_CHARS = 1_500_000;

function read(key, fallback) {
  try {
    const text = localStorage.getItem(key);
    return text ? JSON.parse(text) : fallback;
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false; // full or disabled: the page keeps working, only without saving
  }
}

export function newId(prefix) {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `${prefix}_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Conversation heads, most recent first. */
export function listConversations() {
  const list = read(INDEX_KEY, []);
  return Array.isArray(list) ? list.sort((a, b) => (b.updatedAt ?? 0) - (a.updatedAt ?? 0)) : [];
}

export function getConversation(id) {
  return listConversations().find((c) => c.id === id) ?? null;
}

export function saveConversation(head) {
  const list = listConversations().filter((c) => c.id !== head.id);
  list.unshift({ ...head, updatedAt: Date.now() });
  write(INDEX_KEY, list.slice(0, 200));
}

/** The stored local state of a conversation, as saved (for undoing a removal). */
export function readLocalRaw(id) {
  return read(LOCAL_PREFIX + id, null);
}

export function writeLocalRaw(id, value) {
  if (value) write(LOCAL_PREFIX + id, value);
}

export function forgetConversation(id) {
  write(
    INDEX_KEY,
    listConversations().filter((c) => c.id !== id),
  );
  try {
    localStorage.removeItem(LOCAL_PREFIX + id);
  } catch {
    // nothing to do
  }
}

export function currentConversationId() {
  return read(CURRENT_KEY, null);
}

export function setCurrentConversationId(id) {
  write(CURRENT_KEY, id);
}

/** What one conversation keeps in the browser (see conversation.js for each field). */
export function loadLocal(id) {
  return normalizeLocal(read(LOCAL_PREFIX + id, {}));
}

export function blankLocal() {
  return normalizeLocal({});
}

function normalizeLocal(local) {
  const object = (value) => (value && typeof value === "object" && !Array.isArray(value) ? value : {});
  const list = (value) => (Array.isArray(value) ? value : []);
  return {
    handCells: list(local.handCells),
    edits: object(local.edits),
    counts: object(local.counts),
    collapsed: object(local.collapsed),
    attachments: object(local.attachments),
    pending: list(local.pending),
    unsent: list(local.unsent),
    draft: typeof local.draft === "string" ? local.draft : "",
  };
}

export function saveLocal(id, local) {
  let value = local;
  if (JSON.stringify(value).length > MAX_LOCAL_CHARS) value = withoutOldImages(value);
  write(LOCAL_PREFIX + id, value);
}

function withoutOldImages(local) {
  const copy = JSON.parse(JSON.stringify(local));
  const records = [...copy.handCells, ...Object.values(copy.edits)];
  for (const record of records) {
    if (JSON.stringify(copy).length <= MAX_LOCAL_CHARS) break;
    record.outputs = (record.outputs ?? []).map((output) =>
      output.data && Object.keys(output.data).some((t) => t.startsWith("image/"))
        ? { type: "stream", name: "stderr", text: "[image not kept: too big to save]\n" }
        : output,
    );
  }
  return copy;
}
