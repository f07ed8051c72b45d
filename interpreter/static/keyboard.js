// Keys, as in Jupyter. A cell is in edit mode (the caret in its editor) or in command
// mode (the cell itself focused, keys act on cells):
//
//   edit mode      Shift+Enter run, go to the next cell (a new one at the end)
//                  Ctrl+Enter run, stay (command mode) · Alt+Enter run, insert below
//                  Esc command mode · Tab complete (or indent) · Shift+Tab help (or dedent)
//                  Ctrl+] / Ctrl+[ indent / dedent
//   command mode   Enter edit · ↑/K ↓/J select · A/B insert above/below · D,D delete
//                  Z undo delete · M Markdown · Y code · O hide/show output
//                  Ctrl+Shift+↑/↓ move · I,I interrupt · 0,0 restart · Shift+Enter etc. run
//   message box    Enter send · Shift+Enter new line · Esc to the cells
//   anywhere       Shift+Esc to the message box · Esc closes an open panel

import { $ } from "./ui.js";

const DOUBLE_KEY_MS = 800;

export function installKeyboard(ctx) {
  const { notebook, completer } = ctx;
  const area = $("notebook");
  const cellOf = (node) => notebook.cells.get(node.closest(".cell")?.dataset.key);

  area.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target.classList?.contains("editor-input")) editKey(event, cellOf(target));
    else if (target.classList?.contains("cell")) commandKey(event, cellOf(target));
  });
  area.addEventListener("input", (event) => {
    if (!event.target.classList?.contains("editor-input")) return;
    completer.closeHelp();
    if (completer.open) completer.filter();
  });
  area.addEventListener("focusout", (event) => {
    if (!event.target.classList?.contains("editor-input")) return;
    completer.close();
    completer.closeHelp();
  });

  function runAndAdvance(cell) {
    notebook.run(cell);
    const next = notebook.neighbour(cell, 1);
    if (next) notebook.command(next);
    else notebook.addCell({ where: "end" });
  }

  function runKeys(event, cell) {
    if (event.key !== "Enter" || event.isComposing) return false;
    if (event.shiftKey && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      runAndAdvance(cell);
      return true;
    }
    if ((event.ctrlKey || event.metaKey) && !event.shiftKey) {
      event.preventDefault();
      notebook.run(cell);
      notebook.command(cell);
      return true;
    }
    if (event.altKey && !event.shiftKey) {
      event.preventDefault();
      notebook.run(cell);
      notebook.addCell({ where: { after: cell } });
      return true;
    }
    return false;
  }

  function editKey(event, cell) {
    if (!cell || completer.handleKey(event)) return;
    if (runKeys(event, cell)) return;
    const textarea = cell.textarea;
    const plain = !event.altKey && !event.ctrlKey && !event.metaKey;
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      if (completer.helpOpen) {
        completer.closeHelp();
        return;
      }
      notebook.command(cell);
      return;
    }
    if (textarea.readOnly) return;
    if (event.key === "Tab" && plain) {
      event.preventDefault();
      const before = textarea.value.slice(0, textarea.selectionStart);
      const multiline = textarea.value.slice(textarea.selectionStart, textarea.selectionEnd).includes("\n");
      if (event.shiftKey) {
        if (!multiline && cell.kind === "code" && /[\w.)(]$/.test(before)) completer.inspect(cell);
        else cell.dedent();
      } else if (!multiline && cell.kind === "code" && /[\w.'"/]$/.test(before)) {
        completer.complete(cell);
      } else {
        cell.indent();
      }
      return;
    }
    if (event.ctrlKey && (event.key === "]" || event.key === "[")) {
      event.preventDefault();
      if (event.key === "]") cell.indent();
      else cell.dedent();
      return;
    }
    if (event.key === "Enter" && plain && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      cell.newline();
    }
  }

  let lastKey = { key: "", at: 0 };
  function pressedTwice(key) {
    const now = Date.now();
    const twice = lastKey.key === key && now - lastKey.at < DOUBLE_KEY_MS;
    lastKey = twice ? { key: "", at: 0 } : { key, at: now };
    return twice;
  }

  function commandKey(event, cell) {
    if (!cell || event.isComposing) return;
    if (runKeys(event, cell)) return;
    const key = event.key;
    if (event.ctrlKey && event.shiftKey && (key === "ArrowUp" || key === "ArrowDown")) {
      event.preventDefault();
      notebook.move(cell, key === "ArrowUp" ? -1 : 1);
      cell.command();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    const act = (fn) => {
      event.preventDefault();
      fn();
    };
    switch (lower) {
      case "Enter":
        return act(() => notebook.edit(cell));
      case "ArrowUp":
      case "k":
        return act(() => notebook.command(notebook.neighbour(cell, -1) ?? cell));
      case "ArrowDown":
      case "j":
        return act(() => notebook.command(notebook.neighbour(cell, 1) ?? cell));
      case "a":
        return act(() => notebook.addCell({ where: { before: cell }, edit: false }));
      case "b":
        return act(() => notebook.addCell({ where: { after: cell }, edit: false }));
      case "d":
        return act(() => pressedTwice("d") && notebook.remove(cell));
      case "z":
        return act(() => notebook.undoDelete());
      case "m":
        return act(() => cell.setKind("markdown"));
      case "y":
        return act(() => cell.setKind("code"));
      case "o":
        return act(() => cell.toggleCollapsed("output"));
      case "i":
        return act(() => pressedTwice("i") && ctx.container.interrupt());
      case "0":
        return act(() => pressedTwice("0") && ctx.container.restart());
      default:
        return undefined;
    }
  }

  // -- the message box and the page --------------------------------------------------------------

  const input = $("composer-input");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    } else if (event.key === "Escape" && !event.shiftKey) {
      const cell = notebook.selected?.element.isConnected ? notebook.selected : notebook.lastCell();
      if (cell) {
        event.preventDefault();
        notebook.command(cell);
      }
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
    if (event.shiftKey) {
      event.preventDefault();
      input.focus();
      return;
    }
    if (completer.helpOpen) completer.closeHelp();
    const details = $("container-details");
    if (details.classList.contains("open")) {
      ctx.container.toggleDetails(false);
      $("container-summary").focus();
      return;
    }
    const open = document.querySelector(".drawer.open");
    if (open) {
      ctx.toggleDrawer(open.id, false);
      ctx.drawerOpener(open.id)?.focus();
    }
  });
}
