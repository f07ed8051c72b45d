// Small pieces of page furniture every module uses: building elements, the live region
// for screen readers, the banner, passing notices ("toasts") with an optional action,
// a confirmation dialog, the clipboard, and number formats.

export const $ = (id) => document.getElementById(id);

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

/** A button; ``label`` is its visible text, ``options.label`` its accessible name. */
export function button(text, className, onClick, options = {}) {
  const node = el("button", className, text);
  node.type = "button";
  if (options.label) node.setAttribute("aria-label", options.label);
  if (options.title) node.title = options.title;
  if (onClick) node.addEventListener("click", onClick);
  return node;
}

export function announce(text) {
  const node = $("announcer");
  node.textContent = "";
  // A fresh text node after a tick, so screen readers announce repeats too.
  setTimeout(() => (node.textContent = text), 50);
}

// -- the banner: unreachable service, expired container, a turn that failed --------------

export function showBanner(kind, text, actions = []) {
  const banner = $("banner");
  banner.dataset.kind = kind;
  $("banner-text").textContent = text;
  const holder = $("banner-actions");
  holder.replaceChildren();
  for (const [label, handler, primary] of actions) {
    holder.append(button(label, primary ? "primary" : "", handler));
  }
  banner.hidden = false;
}

export function hideBanner(kind) {
  const banner = $("banner");
  if (!kind || banner.dataset.kind === kind) banner.hidden = true;
}

// -- toasts ------------------------------------------------------------------------------

let toastTimer = null;

/** A passing notice under the header (never over the message box); with ``action``
 * ([label, handler]) it offers one button, as "Undo". */
export function toast(text, { action = null, ms = 6000 } = {}) {
  const node = $("toast");
  node.replaceChildren(el("span", "toast-text", text));
  if (action) {
    const [label, handler] = action;
    node.append(
      button(label, "toast-action", () => {
        hideToast();
        handler();
      }),
    );
  }
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, ms);
}

export function hideToast() {
  clearTimeout(toastTimer);
  $("toast").hidden = true;
}

// -- confirmation ------------------------------------------------------------------------

/** Ask before something that cannot be undone; resolves to true on "yes". */
export function confirmDialog({ title, body, confirm, danger = true }) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-body").textContent = body;
  const yes = $("confirm-yes");
  yes.textContent = confirm;
  yes.className = danger ? "danger" : "primary";
  const returnFocus = document.activeElement;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        resolve(dialog.returnValue === "yes");
        if (returnFocus?.isConnected) returnFocus.focus();
      },
      { once: true },
    );
  });
}

// -- the clipboard -----------------------------------------------------------------------

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (an insecure origin): the old way, through a selection.
    const area = el("textarea", "visually-hidden");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("Copied.", { ms: 1500 });
}

// -- formats -----------------------------------------------------------------------------

export function formatBytes(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function formatDuration(seconds) {
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function formatMemory(limit) {
  const match = /^(\d+)([kmg])$/i.exec(limit ?? "");
  if (!match) return limit ?? "–";
  return `${match[1]} ${{ k: "KB", m: "MB", g: "GB" }[match[2].toLowerCase()]}`;
}

/** The text of a Responses message's content (a string or a list of parts). */
export function textOf(content) {
  if (typeof content === "string") return content;
  return (content ?? []).map((part) => part.text ?? part.refusal ?? "").join("");
}
