// The list of conversations: open, search by title, rename, and remove (with Undo:
// removing is one click, so it must be one click to take back).

import { $, button, el, toast } from "./ui.js";

export class Sidebar {
  constructor(ctx) {
    this.ctx = ctx;
    this.query = "";
    const search = $("conversation-search");
    search.addEventListener("input", () => {
      this.query = search.value;
      this.render();
    });
    search.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && search.value) {
        event.stopPropagation();
        search.value = "";
        this.query = "";
        this.render();
      }
    });
    ctx.store.onListChange(() => this.render());
  }

  render() {
    const store = this.ctx.store;
    const current = store.head;
    document.title = current?.saved && current.title ? `${current.title} · Code Interpreter` : "Code Interpreter";
    const list = $("conversation-list");
    list.replaceChildren();
    const heads = store.list(this.query);
    if (!heads.length) {
      const empty = this.query ? "No conversation has that in its title." : "Past conversations show here.";
      list.append(el("li", "muted small", empty));
      return;
    }
    for (const head of heads) list.append(this.item(head, head.id === current?.id));
  }

  item(head, current) {
    const item = el("li", "conversation-item");
    const open = button("", "conversation-open", () => {
      this.ctx.closeDrawers();
      if (this.ctx.store.head?.id !== head.id) this.ctx.openConversation(head.id);
    });
    open.append(
      el("span", "conversation-title", head.title),
      el("span", "conversation-when", new Date(head.updatedAt).toLocaleString()),
    );
    if (current) open.setAttribute("aria-current", "page");
    const rename = button("✎", "conversation-tool conversation-rename", () => this.rename(item, head), {
      label: `Rename “${head.title}”`,
      title: "Rename",
    });
    const remove = button("✕", "conversation-tool conversation-remove", () => this.remove(head), {
      label: `Remove “${head.title}”`,
      title: "Remove (can be undone)",
    });
    item.append(open, rename, remove);
    return item;
  }

  rename(item, head) {
    const input = el("input", "conversation-rename-input");
    input.value = head.title;
    input.setAttribute("aria-label", "New title");
    item.replaceChildren(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      if (save && input.value.trim() && input.value.trim() !== head.title) {
        this.ctx.store.rename(head.id, input.value);
      } else {
        this.render();
      }
      this.focusOpen(head.id);
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  focusOpen(id) {
    const items = [...$("conversation-list").querySelectorAll(".conversation-item")];
    const heads = this.ctx.store.list(this.query);
    const index = heads.findIndex((h) => h.id === id);
    items[index]?.querySelector(".conversation-open")?.focus();
  }

  remove(head) {
    const store = this.ctx.store;
    const wasOpen = store.head?.id === head.id;
    const removed = store.remove(head.id);
    if (!removed) return;
    if (wasOpen) this.ctx.newChat();
    toast(`Removed “${head.title}”.`, {
      action: [
        "Undo",
        () => {
          store.restore(removed);
          if (wasOpen) this.ctx.openConversation(head.id);
        },
      ],
      ms: 10000,
    });
    $("new-chat").focus();
  }
}
