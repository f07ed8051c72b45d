// Python syntax colouring and ANSI-coloured text (kernel tracebacks), both built as DOM
// nodes from text: nothing here is parsed as HTML.

const KEYWORDS = new Set(
  ("False None True and as assert async await break class continue def del elif else " +
    "except finally for from global if import in is lambda nonlocal not or pass raise " +
    "return try while with yield match case").split(" "),
);
const BUILTINS = new Set(
  ("abs all any bool bytes callable chr dict dir divmod enumerate filter float format " +
    "frozenset getattr hasattr hash help hex id input int isinstance issubclass iter len " +
    "list map max min next object open ord pow print range repr reversed round set " +
    "setattr slice sorted str sum super tuple type vars zip self cls Exception ValueError " +
    "TypeError KeyError IndexError RuntimeError").split(" "),
);

// One alternation, tried left to right at each position: comment, string (with prefix,
// triple-quoted ones may run to the end while the model is still writing), number,
// decorator, name, anything else.
const TOKEN =
  /(#[^\n]*)|((?:[rRbBuUfF]{1,2})?(?:"""[\s\S]*?(?:"""|$(?![\s\S]))|'''[\s\S]*?(?:'''|$(?![\s\S]))|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?))|(\b0[xXoObB][\da-fA-F_]+\b|(?:\b\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?j?\b)|(^[ \t]*@[\w.]+)|([A-Za-z_][\w]*)|([\s\S])/gm;

/** A fragment of spans coloured by token class (``tok-kw``, ``tok-str`` …). */
export function highlightPython(source) {
  const fragment = document.createDocumentFragment();
  let plain = "";
  let previousName = "";
  const flush = () => {
    if (plain) fragment.append(document.createTextNode(plain));
    plain = "";
  };
  const span = (cls, text) => {
    flush();
    const node = document.createElement("span");
    node.className = cls;
    node.textContent = text;
    fragment.append(node);
  };
  TOKEN.lastIndex = 0;
  let m;
  while ((m = TOKEN.exec(source)) !== null) {
    if (m[0] === "") {
      TOKEN.lastIndex += 1;
      continue;
    }
    const [text, comment, string, number, decorator, name] = m;
    if (comment) span("tok-comment", text);
    else if (string) span("tok-str", text);
    else if (number) span("tok-num", text);
    else if (decorator) span("tok-deco", text);
    else if (name) {
      if (previousName === "def" || previousName === "class") span("tok-def", text);
      else if (KEYWORDS.has(text)) span("tok-kw", text);
      else if (BUILTINS.has(text)) span("tok-builtin", text);
      else plain += text;
      previousName = text;
      continue;
    } else plain += text;
    if (!/^\s+$/.test(text)) previousName = "";
  }
  flush();
  return fragment;
}

// -- ANSI --------------------------------------------------------------------------------

const SGR = /\x1b\[([\d;]*)m/g;
const OTHER_ESCAPES = /\x1b\[[\d;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]/g;

export function stripAnsi(text) {
  return String(text).replace(SGR, "").replace(OTHER_ESCAPES, "");
}

/** ``text`` with SGR colour codes turned into spans (``ansi-fg-1``, ``ansi-bold`` …). */
export function renderAnsi(text) {
  const fragment = document.createDocumentFragment();
  const source = String(text).replace(OTHER_ESCAPES, "");
  let fg = null;
  let bg = null;
  let bold = false;
  let last = 0;
  const emit = (chunk) => {
    if (!chunk) return;
    if (fg === null && bg === null && !bold) {
      fragment.append(document.createTextNode(chunk));
      return;
    }
    const node = document.createElement("span");
    const classes = [];
    if (fg !== null) classes.push(`ansi-fg-${fg}`);
    if (bg !== null) classes.push(`ansi-bg-${bg}`);
    if (bold) classes.push("ansi-bold");
    node.className = classes.join(" ");
    node.textContent = chunk;
    fragment.append(node);
  };
  SGR.lastIndex = 0;
  let m;
  while ((m = SGR.exec(source)) !== null) {
    emit(source.slice(last, m.index));
    last = SGR.lastIndex;
    const codes = m[1] === "" ? [0] : m[1].split(";").map(Number);
    for (let k = 0; k < codes.length; k += 1) {
      const code = codes[k];
      if (code === 0) [fg, bg, bold] = [null, null, false];
      else if (code === 1) bold = true;
      else if (code === 22) bold = false;
      else if (code >= 30 && code <= 37) fg = code - 30;
      else if (code >= 90 && code <= 97) fg = code - 90 + 8;
      else if (code === 39) fg = null;
      else if (code >= 40 && code <= 47) bg = code - 40;
      else if (code >= 100 && code <= 107) bg = code - 100 + 8;
      else if (code === 49) bg = null;
      else if (code === 38 || code === 48) {
        // 256-colour (5;n) or true-colour (2;r;g;b): keep the 16 basic ones, skip others.
        const mode = codes[k + 1];
        const value = mode === 5 && codes[k + 2] < 16 ? codes[k + 2] : null;
        if (code === 38) fg = value;
        else bg = value;
        k += mode === 5 ? 2 : mode === 2 ? 4 : 0;
      }
    }
  }
  emit(source.slice(last));
  return fragment;
}
