"""Seeded synthetic tool-use conversations for the demo model, rendered in harmony.

A conversation is 1 to 12 turns drawn from nine task families in any order, plus requests
outside them (answered with ``CANNOT_DO`` and no tool call). Each turn's generator draws
its numbers, names and phrasing from a ``random.Random``, writes the code a careful
assistant would send to python, and computes the tool's output *truthfully* in this
process, as the sandbox's kernel would print it, so the final answer the model learns
only ever quotes real output. A ``Workspace`` follows what the kernel holds (variables,
uploaded files), so a later turn may use a variable an earlier turn, a hand-written
notebook cell, or a turn that truncation has since hidden, defined.

Hand cells are the chat page's own code cells: the service shows them to the model as a
python call and its output that no user message asked for (``HandCell``). They are in
the prompt, never in the loss.

Training draws from ``TRAIN_SEED``-derived streams with the phrasings of ``PHRASINGS``;
the evaluation draws from ``EVAL_SEED`` with the phrasings of ``heldout``, which this
module never imports.
"""

from __future__ import annotations

import datetime
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Literal

from openai_harmony import Message, Role

from model_runner.harmony import (
    HarmonyRenderer,
    SystemPrompt,
    ToolObservation,
    developer_message,
    final_message,
    format_tool_output,
    python_call_message,
    tool_output_message,
    user_message,
)

TRAIN_SEED = 0
VALIDATION_SEED = 500_009  # training phrasings, unseen draws: for pilots, never for the tables
EVAL_SEED = 1_000_003  # never used for training data

FAMILIES = ("arithmetic", "state", "plot", "csv", "primes_fib", "file", "stats", "dates", "words")
OUT_OF_SCOPE = "out_of_scope"

#: The whole answer to anything outside the families: honest, fixed, no tool call.
CANNOT_DO = (
    "I'm the small demo model, so I can only do a few things: arithmetic, variables "
    "across turns, plots of functions, CSV summaries, primes and Fibonacci numbers, files "
    "of numbers, statistics of a list, dates, and sorting or counting words. For anything "
    "else, switch to gpt-oss-20b: INTERPRETER_MODEL=openai/gpt-oss-20b."
)


@dataclass(frozen=True)
class HandCell:
    """A notebook cell the user ran by hand before their next message: the service
    replays it as a python call and its logs (``conversation.input_to_messages``)."""

    code: str
    logs: str


@dataclass(frozen=True)
class Turn:
    """One user request and the assistant's reply: one python call and a final answer
    that quotes its output, or (out of scope) the fixed answer alone."""

    family: str
    user: str
    code: str | None
    observation: ToolObservation | None
    answer: str
    # Substrings a correct final answer contains (the real values it quotes).
    expected: tuple[str, ...]
    # Cells the user ran by hand just before this turn's message.
    cells: tuple[HandCell, ...] = ()
    # A file the code must leave in /mnt/data: (name, contents).
    file: tuple[str, str] | None = None

    @property
    def tool_output(self) -> str:
        assert self.observation is not None
        return format_tool_output(self.observation)


@dataclass(frozen=True)
class Conversation:
    family: str  # a family's name, or "mixed"
    turns: tuple[Turn, ...]
    system: SystemPrompt
    instructions: str | None = None
    # Files the client uploads to /mnt/data before the first request: name -> text.
    files: dict[str, str] = field(default_factory=dict)
    # The oldest turns ran but are no longer shown (the service's truncation dropped them).
    hidden_turns: int = 0

    def prefix(self) -> list[Message]:
        """The system and developer messages: what truncation always keeps."""
        messages = [self.system.to_message()]
        if self.instructions:
            messages.append(developer_message(self.instructions))
        return messages

    def turn_messages(self, index: int) -> list[tuple[Message, bool]]:
        """One turn's messages, each with whether the model wrote it."""
        turn = self.turns[index]
        out: list[tuple[Message, bool]] = []
        for cell in turn.cells:
            out += [
                (python_call_message(cell.code), False),
                (tool_output_message(cell.logs), False),
            ]
        out.append((user_message(turn.user), False))
        if turn.code is not None:
            out += [
                (python_call_message(turn.code), True),
                (tool_output_message(turn.tool_output), False),
            ]
        out.append((final_message(turn.answer), True))
        return out

    def messages(self, upto_turn: int | None = None) -> list[Message]:
        """The visible conversation as harmony messages, as the service would replay it."""
        return [message for message, _ in self.labelled_messages(upto_turn)]

    def labelled_messages(self, upto_turn: int | None = None) -> list[tuple[Message, bool]]:
        out = [(message, False) for message in self.prefix()]
        stop = len(self.turns) if upto_turn is None else upto_turn
        for index in range(self.hidden_turns, stop):
            out += self.turn_messages(index)
        return out


# -- the kernel's state, as the generator follows it ---------------------------------------


@dataclass
class Workspace:
    """What the conversation's kernel holds: integer variables and uploaded files."""

    variables: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    # Per uploaded CSV: its numeric columns' names, the label column's and its text.
    tables: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


Phrasings = Mapping[str, Sequence[str]]


# -- shared vocabulary of the prompts ----------------------------------------------------

INSTRUCTIONS = (
    "Be concise.",
    "Answer briefly.",
    "You are a helpful assistant.",
    "Use the python tool for every calculation.",
    "Keep your answers short and precise.",
    "You help users with data and numbers.",
    "Reply in one sentence.",
    "You are a data assistant. Always show your work with code.",
)


def _system(rng: random.Random) -> SystemPrompt:
    day = datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(4 * 365))
    effort: Literal["low", "medium", "high"] = rng.choice(("low", "medium", "medium", "high"))
    return SystemPrompt(conversation_start_date=day.isoformat(), reasoning_effort=effort)


def _instructions(rng: random.Random) -> str | None:
    return rng.choice(INSTRUCTIONS) if rng.random() < 0.25 else None


def _digits(rng: random.Random, max_digits: int) -> int:
    """A non-negative integer whose digit count is uniform in 1..max_digits, so short and
    long numbers are equally common (uniform values would be almost all long)."""
    digits = rng.randint(1, max_digits)
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def _signed(rng: random.Random, max_digits: int, negative: float) -> int:
    value = _digits(rng, max_digits)
    return -value if value and rng.random() < negative else value


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _phrase(rng: random.Random, phrasings: Phrasings, key: str, **slots: object) -> str:
    return rng.choice(phrasings[key]).format(**slots)


# -- the training phrasings (the evaluation's own are in ``heldout``) ---------------------

PHRASINGS: dict[str, tuple[str, ...]] = {
    "arithmetic.add": (
        "What is {a} + {b}?", "{a} + {b}", "{a}+{b}=?", "Compute {a} plus {b}.",
        "Add {a} and {b}.", "what's {a} plus {b}", "Calculate the sum of {a} and {b}.",
        "sum of {a} and {b}?", "{a} + {b} = ?", "How much is {a} + {b}?",
        "pls add {a} to {b}", "Can you add {a} and {b}?", "calc {a}+{b}",
    ),
    "arithmetic.sub": (
        "What is {a} - {b}?", "{a} - {b}", "{a}-{b}=?", "Compute {a} minus {b}.",
        "Subtract {b} from {a}.", "what's {a} minus {b}", "Calculate {a} - {b}.",
        "{a} - {b} = ?", "How much is {a} minus {b}?", "take {b} away from {a}",
        "Can you subtract {b} from {a}?", "calc {a}-{b}", "the difference {a} - {b}?",
    ),
    "arithmetic.mul": (
        "What is {a} * {b}?", "{a} * {b}", "{a}*{b}=?", "Compute {a} times {b}.",
        "Multiply {a} by {b}.", "what's {a} times {b}", "Calculate the product of {a} and {b}.",
        "{a} x {b}?", "How much is {a} multiplied by {b}?", "product of {a} and {b}",
        "pls multiply {a} and {b}", "Can you multiply {a} by {b}?", "calc {a}*{b}",
        "{a} × {b}",
    ),
    "state.set": (
        "Set {v} to {n}.", "Let {v} = {n}.", "{v} = {n}", "Store {n} in a variable called {v}.",
        "Assign {n} to {v}.", "Please set {v} to {n}.", "Create a variable {v} with the value {n}.",
        "make {v} equal to {n}", "{v} is {n}, remember that", "let {v} be {n}",
        "Remember {v} = {n}.", "set {v}={n}",
    ),
    "state.square": (
        "What is {v} squared?", "Now compute {v} squared.", "{v} squared?",
        "What's the square of {v}?", "square {v}", "{v}**2?", "Compute {v} to the power of 2.",
        "and {v} squared", "Square {v} please.",
    ),
    "state.cube": (
        "What is {v} cubed?", "Now compute {v} cubed.", "{v} cubed?", "What's the cube of {v}?",
        "cube {v}", "{v}**3?", "Compute {v} to the power of 3.", "and {v} cubed",
    ),
    "state.times": (
        "What is {v} times {k}?", "Multiply {v} by {k}.", "Now compute {v} * {k}.",
        "{v} * {k}?", "{v} times {k}", "what's {v}*{k}", "Calculate {v} multiplied by {k}.",
    ),
    "state.plus": (
        "What is {v} plus {k}?", "Add {k} to {v}. What do you get?", "Now compute {v} + {k}.",
        "{v} + {k}?", "{v} plus {k}", "what's {v}+{k}", "Calculate {v} + {k}.",
    ),
    "state.minus": (
        "What is {v} minus {k}?", "Subtract {k} from {v}.", "Now compute {v} - {k}.",
        "{v} - {k}?", "{v} minus {k}", "what's {v}-{k}", "Calculate {v} - {k}.",
    ),
    "plot.plot": (
        "Plot {f} from {a} to {b}.", "Plot {f} for x between {a} and {b}.",
        "Draw a graph of {f} over [{a}, {b}].", "Can you plot {f} from x = {a} to x = {b}?",
        "Make a plot of y = {f} on the range {a} to {b}.", "Show me {f} for x from {a} to {b}.",
        "plot {f} {a} to {b}", "graph of {f}, x in {a}..{b}", "Draw {f} between {a} and {b}.",
        "y = {f}, x from {a} to {b}: plot it",
    ),
    "csv.summary": (
        "I uploaded {f}. Summarise it: rows, columns and the mean of {c}.",
        "I uploaded {f}. How many rows and columns does it have, and what is the mean of {c}?",
        "Here is {f}. Give me the number of rows, the columns and the average {c}.",
        "Summarize {f} for me: rows, columns, and the mean of the {c} column.",
        "I uploaded {f}. Please describe its shape and the mean {c}.",
        "summarize {f}, mean of {c}", "{f}: shape, columns, mean of {c}?", "mean {c} in {f}?",
        "Load {f} and tell me the rows, the columns and the mean of {c}.",
        "What does {f} look like? Mean of {c} too.", "quick summary of {f} with avg {c}",
    ),
    "primes_fib.primes": (
        "How many primes are there below {n}?", "Count the primes less than {n}.",
        "How many prime numbers are smaller than {n}?", "What is the number of primes below {n}?",
        "primes below {n}?", "count primes < {n}", "number of primes under {n}",
        "How many primes are less than {n}?", "# of primes below {n}",
    ),
    "primes_fib.fib": (
        "What is the {o} Fibonacci number?", "Compute the {o} Fibonacci number.",
        "Find Fibonacci number {n}.", "Give me the {o} Fibonacci number.",
        "What is F({n}) in the Fibonacci sequence (F(1) = F(2) = 1)?", "fib({n})?",
        "fibonacci {n}", "the {o} fibonacci number pls", "Calculate Fibonacci({n}).",
    ),
    "file.file": (
        "Write the {kind} of {a} to {b} to {f}.", "Save the {kind} of {a} to {b} in {f}.",
        "Create a file {f} with the {kind} of {a} to {b}, one per line.",
        "Put the {kind} of the numbers {a} to {b} into {f}.", "{kind} of {a} to {b} -> {f}",
        "write {kind} {a}-{b} to {f}", "Store the {kind} from {a} to {b} in a file called {f}.",
        "Can you write the {kind} of {a} to {b} into {f}?",
    ),
    "stats.all": (
        "What are the mean, median, standard deviation, min and max of {xs}?",
        "Give me statistics for {xs}.", "stats of {xs}", "Summarize these numbers: {xs}",
        "Compute the mean, median, std, min and max of {xs}.",
        "Basic statistics of {xs}, please.", "describe {xs}", "summary stats for {xs}?",
    ),
    "stats.mean": (
        "What is the mean of {xs}?", "Average of {xs}?", "mean {xs}",
        "Compute the average of {xs}.", "What's the average of these numbers: {xs}",
        "find the mean of {xs}",
    ),
    "stats.median": (
        "What is the median of {xs}?", "Median of {xs}?", "median {xs}",
        "Compute the median of {xs}.", "find the median of these numbers: {xs}",
    ),
    "stats.stdev": (
        "What is the standard deviation of {xs}?", "Standard deviation of {xs}?",
        "stdev {xs}", "Compute the std of {xs}.", "find the standard deviation of {xs}",
    ),
    "stats.minmax": (
        "What are the min and max of {xs}?", "Min and max of {xs}?", "min max {xs}",
        "Find the smallest and the largest number in {xs}.", "lowest and highest of {xs}?",
    ),
    "dates.between": (
        "How many days are there between {d1} and {d2}?", "Days between {d1} and {d2}?",
        "days from {d1} to {d2}", "Count the days between {d1} and {d2}.",
        "How many days from {d1} until {d2}?", "number of days between {d1} and {d2}",
        "What is the number of days from {d1} to {d2}?", "{d1} to {d2}: how many days?",
    ),
    "dates.weekday": (
        "What day of the week was {d}?", "Which weekday is {d}?", "weekday of {d}?",
        "What weekday does {d} fall on?", "{d}: which day of the week?",
        "On what day of the week is {d}?", "day of week for {d}", "Was {d} a Monday? Check it.",
    ),
    "words.sort": (
        'Sort the words in "{s}" alphabetically.', 'Sort these words: "{s}"',
        "Put the words of '{s}' in alphabetical order.", 'sort "{s}"',
        'alphabetical order of the words in "{s}"?', "Sort the words of this sentence: '{s}'",
        'Can you sort "{s}" alphabetically?', "Sort alphabetically: {s}",
    ),
    "words.count": (
        'How many words are in "{s}"?', 'Count the words in "{s}".', "word count of '{s}'",
        'how many words: "{s}"', "Count the words of this sentence: '{s}'",
        'Number of words in "{s}"?', "How many words does this have: {s}",
    ),
    "words.count_word": (
        'How many times does "{w}" appear in "{s}"?', 'Count "{w}" in "{s}".',
        "how often is '{w}' in '{s}'?", 'count the word "{w}" in "{s}"',
        'In "{s}", how many times does the word "{w}" occur?',
    ),
}  # fmt: skip

# A casual user's additions to a request (training only: the evaluation's phrasings are
# used exactly as written).
_OPENERS = ("Hi, ", "Hi! ", "Quick one: ", "OK, ", "Next: ", "Also, ", "One more: ",
            "Now ", "Alright. ", "Thanks! ", "Great. ")  # fmt: skip
_CLOSERS = (" Thanks.", " Thank you!", " pls", " :)", " ty", " please", "!")


def _casual(rng: random.Random, text: str) -> str:
    """Lower-case starts, missing full stops, greetings: how people really type."""
    if rng.random() < 0.15:
        opener = rng.choice(_OPENERS)
        text = opener + (text[0].lower() + text[1:] if opener[-2] not in ".!:" else text)
    elif rng.random() < 0.2:
        text = text[0].lower() + text[1:]
    if rng.random() < 0.15 and text[-1] in ".?":
        text = text[:-1]
    if rng.random() < 0.1:
        text += rng.choice(_CLOSERS)
    return text


# -- families ------------------------------------------------------------------------------

_ARITHMETIC = {"add": "+", "sub": "-", "mul": "*"}


def arithmetic(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    kind = rng.choice(tuple(_ARITHMETIC))
    op = _ARITHMETIC[kind]
    a, b = _signed(rng, 12, 0.15), _signed(rng, 12, 0.15)
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    right = f"({b})" if b < 0 else str(b)
    return Turn(
        family="arithmetic",
        user=_phrase(rng, ph, f"arithmetic.{kind}", a=a, b=b),
        code=f"print({a} {op} {right})",
        observation=ToolObservation(text=f"{result}\n"),
        answer=f"The result is {result}.",
        expected=(str(result),),
    )


VARIABLES = ("x", "y", "z", "a", "b", "n", "k", "m", "t", "w", "total", "count", "value",
             "price", "speed", "score", "width", "size", "height", "rate", "base", "limit",
             "budget", "balance", "steps", "days", "cost", "level", "points", "num", "val",
             "amount")  # fmt: skip

_STATE_USES: dict[str, tuple[str, Callable[[int, int], int]]] = {
    "square": ("print({v} ** 2)", lambda n, k: n**2),
    "cube": ("print({v} ** 3)", lambda n, k: n**3),
    "times": ("print({v} * {k})", lambda n, k: n * k),
    "plus": ("print({v} + {k})", lambda n, k: n + k),
    "minus": ("print({v} - {k})", lambda n, k: n - k),
}


def state_set(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    v, n = rng.choice(VARIABLES), _signed(rng, 8, 0.1)
    ws.variables[v] = n
    return Turn(
        family="state",
        user=_phrase(rng, ph, "state.set", v=v, n=n),
        code=f"{v} = {n}\nprint({v})",
        observation=ToolObservation(text=f"{n}\n"),
        answer=f"{v} is now {n}.",
        expected=(str(n),),
    )


def state_use(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    """A question about a variable the kernel already holds, without restating it."""
    v = rng.choice(sorted(ws.variables))
    kind = rng.choice(tuple(_STATE_USES))
    code, fn = _STATE_USES[kind]
    k = _digits(rng, 4)
    result = fn(ws.variables[v], k)
    return Turn(
        family="state",
        user=_phrase(rng, ph, f"state.{kind}", v=v, k=k),
        code=code.format(v=v, k=k),
        observation=ToolObservation(text=f"{result}\n"),
        answer=f"The result is {result}.",
        expected=(str(result),),
    )


# name in the prompt -> numpy expression; the second value says whether the domain
# must be positive.
PLOT_FUNCTIONS: dict[str, tuple[str, bool]] = {
    "sin(x)": ("np.sin(x)", False),
    "cos(x)": ("np.cos(x)", False),
    "tan(x)": ("np.tan(x)", False),
    "exp(x)": ("np.exp(x)", False),
    "tanh(x)": ("np.tanh(x)", False),
    "x^2": ("x ** 2", False),
    "x^3": ("x ** 3", False),
    "abs(x)": ("np.abs(x)", False),
    "log(x)": ("np.log(x)", True),
    "sqrt(x)": ("np.sqrt(x)", True),
}


def plot(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    name = rng.choice(tuple(PLOT_FUNCTIONS))
    expr, positive = PLOT_FUNCTIONS[name]
    if positive:
        a = rng.randint(1, 20)
        b = a + rng.randint(1, 100)
    else:
        a = rng.randint(-50, 20)
        b = a + rng.randint(1, 100)
    code = (
        "import numpy as np\n"
        "import matplotlib.pyplot as plt\n"
        f"x = np.linspace({a}, {b}, 200)\n"
        f"plt.plot(x, {expr})\n"
        f'plt.title("{name}")\n'
        "plt.show()"
    )
    return Turn(
        family="plot",
        user=_phrase(rng, ph, "plot.plot", f=name, a=a, b=b),
        code=code,
        observation=ToolObservation(images=1),
        answer=f"Here is the plot of {name} from {a} to {b}.",
        expected=(name, str(a), str(b)),
    )


CSV_FILES = ("sales", "data", "scores", "orders", "results", "measurements", "people",
             "inventory", "survey", "weather", "students", "products", "trips", "report",
             "customers", "expenses", "employees", "budget", "prices", "grades", "flights",
             "patients", "stock", "sensors", "games", "books", "cars", "visits", "houses",
             "runs", "logs", "items", "sample", "export", "records", "table")  # fmt: skip
CSV_COLUMNS = ("price", "amount", "score", "age", "height", "weight", "revenue", "temperature",
               "units", "quantity", "cost", "duration", "distance", "rating", "salary", "year",
               "speed", "profit", "count", "total", "income", "length", "width", "volume",
               "pressure", "humidity", "points", "sales", "tax", "discount", "balance", "hours",
               "minutes", "visits", "clicks", "views", "stock", "size", "level",
               "value")  # fmt: skip
_CSV_LABELS = ("name", "city", "region", "category", "id", "date", "status", "product",
               "country", "team", "type", "code")  # fmt: skip


def _rounded_mean(total: int, rows: int, scale: int) -> str | None:
    """``round(mean, 2)`` as the kernel prints it, for a column whose values are integers
    over ``scale``; None when the mean is exactly halfway between two hundredths (numpy
    and Python may round such a tie differently)."""
    hundredths = Fraction(total * 100, rows * scale)
    floor = hundredths.numerator // hundredths.denominator
    remainder = hundredths - floor
    if remainder == Fraction(1, 2):
        return None
    nearest = floor + (1 if remainder > Fraction(1, 2) else 0)
    return repr(nearest / 100)


def _csv_table(rng: random.Random, ws: Workspace) -> tuple[str, list[str], list[str]]:
    """A new CSV in the workspace: its name, numeric columns and all columns."""
    free = [name for name in CSV_FILES if f"{name}.csv" not in ws.files]
    filename = rng.choice(free) + ".csv"
    numeric = rng.sample(CSV_COLUMNS, rng.randint(1, 4))
    columns = list(numeric)
    if rng.random() < 0.75:
        columns.insert(rng.randint(0, len(columns)), rng.choice(_CSV_LABELS))
    # 2 to 1,000 rows, uniform in the logarithm: small and large tables alike.
    rows = round(10 ** rng.uniform(0.301, 3.0))
    specs: dict[str, tuple[int, int, int]] = {}  # column -> (low, high, decimals)
    for column in numeric:
        high = rng.choice((10, 100, 1000, 10000, 100000))
        low = rng.choice((0, 0, 1, -high))
        specs[column] = (low, high, rng.choice((0, 0, 1, 2)))
    lines = [",".join(columns)]
    for i in range(rows):
        cells = []
        for column in columns:
            if column not in specs:
                cells.append(f"{column}{i}")
                continue
            low, high, decimals = specs[column]
            units = rng.randint(low * 10**decimals, high * 10**decimals)
            cells.append(f"{units / 10**decimals:.{decimals}f}" if decimals else str(units))
        lines.append(",".join(cells))
    text = "\n".join(lines) + "\n"
    ws.files[filename] = text
    ws.tables[filename] = (numeric, columns)
    return filename, numeric, columns


def csv_summary(filename: str, column: str, text: str) -> tuple[int, int, str | None]:
    """Rows, columns and ``round(mean, 2)`` of ``column`` as pandas prints them."""
    header, *body = text.splitlines()
    names = header.split(",")
    index = names.index(column)
    values = [row.split(",")[index] for row in body]
    decimals = max((len(v.split(".")[1]) if "." in v else 0) for v in values)
    scale = 10**decimals
    total = sum(int(Fraction(v) * scale) for v in values)
    return len(body), len(names), _rounded_mean(total, len(body), scale)


def csv(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    while True:
        filename, numeric, columns = _csv_table(rng, ws)
        target = rng.choice(numeric)
        rows, n_columns, mean = csv_summary(filename, target, ws.files[filename])
        if mean is not None:
            break
        del ws.files[filename], ws.tables[filename]
    code = (
        "import pandas as pd\n"
        f'df = pd.read_csv("{filename}")\n'
        "print(df.shape)\n"
        'print(", ".join(df.columns))\n'
        f'print(round(df["{target}"].mean(), 2))'
    )
    joined = ", ".join(columns)
    return Turn(
        family="csv",
        user=_phrase(rng, ph, "csv.summary", f=filename, c=target),
        code=code,
        observation=ToolObservation(text=f"({rows}, {n_columns})\n{joined}\n{mean}\n"),
        answer=(
            f"{filename} has {rows} rows and {n_columns} columns: {joined}. "
            f"The mean of {target} is {mean}."
        ),
        expected=(f"{rows} rows", f"{n_columns} columns", joined, f"{target} is {mean}"),
    )


def count_primes_below(n: int) -> int:
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
    return sum(sieve)


def primes_fib(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    if rng.random() < 0.5:
        # 2 to 1,000,000, uniform in the number of digits.
        n = max(2, min(10**6, _digits(rng, 7) if rng.random() < 0.1 else _digits(rng, 6)))
        count = count_primes_below(n)
        return Turn(
            family="primes_fib",
            user=_phrase(rng, ph, "primes_fib.primes", n=n),
            # A sieve: a second for a million, in a one-CPU sandbox.
            code=(
                f"n = {n}\n"
                "sieve = bytearray([1]) * n\n"
                'sieve[:2] = b"\\x00\\x00"\n'
                "for i in range(2, int(n ** 0.5) + 1):\n"
                "    if sieve[i]:\n"
                "        sieve[i * i :: i] = bytes(len(range(i * i, n, i)))\n"
                "print(sum(sieve))"
            ),
            observation=ToolObservation(text=f"{count}\n"),
            answer=f"There are {count} primes below {n}.",
            expected=(str(count),),
        )
    n = rng.randint(1, 300)
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return Turn(
        family="primes_fib",
        user=_phrase(rng, ph, "primes_fib.fib", n=n, o=_ordinal(n)),
        code=f"a, b = 0, 1\nfor _ in range({n}):\n    a, b = b, a + b\nprint(a)",
        observation=ToolObservation(text=f"{a}\n"),
        answer=f"Fibonacci number {n} is {a}.",
        expected=(str(a),),
    )


FILE_NAMES = ("squares", "cubes", "numbers", "output", "list", "values", "table", "results",
              "data", "series", "notes", "powers", "out", "nums", "file", "sequence", "my_numbers",
              "export", "result", "column")  # fmt: skip
# what the user asks for -> the expression written per line
FILE_KINDS = {"squares": "i ** 2", "cubes": "i ** 3", "numbers": "i", "doubles": "2 * i"}


def file(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    kind = rng.choice(tuple(FILE_KINDS))
    filename = rng.choice(FILE_NAMES) + rng.choice((".txt", ".txt", ".csv"))
    a = _digits(rng, 3) if rng.random() < 0.7 else rng.randint(0, 10)
    b = a + rng.randint(1, 100)
    expr = FILE_KINDS[kind]
    code = (
        f'with open("{filename}", "w") as f:\n'
        f"    for i in range({a}, {b} + 1):\n"
        f'        f.write(f"{{{expr}}}\\n")'
    )
    contents = "".join(f"{eval(expr, {}, {'i': i})}\n" for i in range(a, b + 1))
    return Turn(
        family="file",
        user=_phrase(rng, ph, "file.file", kind=kind, a=a, b=b, f=filename),
        code=code,
        observation=ToolObservation(new_files=(f"/mnt/data/{filename}",)),
        answer=f"I wrote the {kind} of {a} to {b} to {filename}.",
        expected=(filename,),
        file=(filename, contents),
    )


def _number_list(rng: random.Random) -> list[int] | list[float]:
    length = rng.randint(2, 12)
    if rng.random() < 0.3:
        # one decimal place, as people type measurements
        scale = rng.choice((10, 100, 1000))
        return [
            rng.randint(-scale if rng.random() < 0.2 else 0, scale * 10) / 10 for _ in range(length)
        ]
    digits = rng.choice((1, 2, 2, 3, 4, 5))
    low = -(10**digits) + 1 if rng.random() < 0.2 else 0
    return [rng.randint(low, 10**digits - 1) for _ in range(length)]


def _list_text(rng: random.Random, values: Sequence[float]) -> str:
    items = [repr(v) for v in values]
    style = rng.random()
    if style < 0.6:
        return ", ".join(items)
    if style < 0.8:
        return "[" + ", ".join(items) + "]"
    if style < 0.9:
        return " ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_STATS = {
    "mean": ("print(round(st.mean(data), 2))", "The mean is {}."),
    "median": ("print(round(st.median(data), 2))", "The median is {}."),
    "stdev": ("print(round(st.stdev(data), 2))", "The standard deviation is {}."),
}


def stats(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    values = _number_list(rng)
    kind = rng.choice(("all", "all", "mean", "median", "stdev", "minmax"))
    head = f"import statistics as st\ndata = [{', '.join(repr(v) for v in values)}]\n"
    mean = repr(round(statistics.mean(values), 2))
    median = repr(round(statistics.median(values), 2))
    stdev = repr(round(statistics.stdev(values), 2))
    low, high = repr(min(values)), repr(max(values))
    if kind == "all":
        code = head + (
            'print("mean", round(st.mean(data), 2))\n'
            'print("median", round(st.median(data), 2))\n'
            'print("stdev", round(st.stdev(data), 2))\n'
            'print("min", min(data))\n'
            'print("max", max(data))'
        )
        output = f"mean {mean}\nmedian {median}\nstdev {stdev}\nmin {low}\nmax {high}\n"
        answer = (
            f"The mean is {mean}, the median is {median}, the standard deviation is {stdev}, "
            f"the minimum is {low} and the maximum is {high}."
        )
        expected: tuple[str, ...] = (
            f"mean is {mean}", f"median is {median}", f"deviation is {stdev}",
            f"minimum is {low}", f"maximum is {high}",
        )  # fmt: skip
    elif kind == "minmax":
        code = head + "print(min(data), max(data))"
        output = f"{low} {high}\n"
        answer = f"The minimum is {low} and the maximum is {high}."
        expected = (f"minimum is {low}", f"maximum is {high}")
    else:
        line, template = _STATS[kind]
        value = {"mean": mean, "median": median, "stdev": stdev}[kind]
        code, output, answer = head + line, f"{value}\n", template.format(value)
        expected = (value,)
    return Turn(
        family="stats",
        user=_phrase(rng, ph, f"stats.{kind}", xs=_list_text(rng, values)),
        code=code,
        observation=ToolObservation(text=output),
        answer=answer,
        expected=expected,
    )


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")  # fmt: skip


def _date(rng: random.Random, near: datetime.date | None = None) -> datetime.date:
    if near is not None and rng.random() < 0.6:
        day = near + datetime.timedelta(days=rng.randint(-800, 800))
        return min(max(day, datetime.date(1900, 1, 1)), datetime.date(2100, 12, 31))
    return datetime.date(1900, 1, 1) + datetime.timedelta(days=rng.randrange(73413))


def _date_text(rng: random.Random, day: datetime.date) -> str:
    month = _MONTHS[day.month - 1]
    style = rng.random()
    if style < 0.35:
        return day.isoformat()
    if style < 0.65:
        return f"{month} {day.day}, {day.year}"
    if style < 0.85:
        return f"{day.day} {month} {day.year}"
    return f"{month[:3]} {day.day}, {day.year}"


def _date_code(day: datetime.date) -> str:
    return f"date({day.year}, {day.month}, {day.day})"


def dates(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    if rng.random() < 0.5:
        first = _date(rng)
        second = _date(rng, near=first)
        days = abs((second - first).days)
        return Turn(
            family="dates",
            user=_phrase(
                rng, ph, "dates.between", d1=_date_text(rng, first), d2=_date_text(rng, second)
            ),
            code=(
                "from datetime import date\n"
                f"print(abs(({_date_code(second)} - {_date_code(first)}).days))"
            ),
            observation=ToolObservation(text=f"{days}\n"),
            answer=f"There are {days} days between the two dates.",
            expected=(f"{days} days",),
        )
    day = _date(rng)
    weekday = day.strftime("%A")
    return Turn(
        family="dates",
        user=_phrase(rng, ph, "dates.weekday", d=_date_text(rng, day)),
        code=f'from datetime import date\nprint({_date_code(day)}.strftime("%A"))',
        observation=ToolObservation(text=f"{weekday}\n"),
        answer=f"That day is a {weekday}.",
        expected=(weekday,),
    )


WORDS = ("the", "a", "cat", "dog", "runs", "quick", "brown", "fox", "jumps", "over", "lazy",
         "apple", "banana", "cherry", "river", "mountain", "blue", "green", "red", "sun", "moon",
         "star", "tree", "house", "car", "road", "book", "pen", "paper", "water", "fire", "city",
         "night", "day", "light", "dark", "happy", "small", "big", "old", "new", "cold", "warm",
         "bird", "fish", "sings", "swims", "flies", "sleeps", "eats", "reads", "writes", "sees",
         "and", "or", "with", "under", "near", "in", "on", "at", "to", "from", "is", "was", "my",
         "your", "we", "they", "she", "he", "it", "data", "code", "music", "song", "garden",
         "flower", "rain", "snow", "wind", "sea", "boat", "train", "plane", "window", "door",
         "table", "chair", "coffee", "tea", "bread", "milk", "cheese", "orange", "lemon", "grape",
         "stone", "gold", "silver", "king", "queen", "child", "friend", "teacher", "student",
         "school", "market", "story", "dream", "time", "world", "team", "game", "ball", "field",
         "forest", "lake", "island", "bridge",
         "castle", "tower", "street", "park", "morning", "evening", "winter", "summer", "spring",
         "autumn", "yellow", "purple", "white", "black", "fast", "slow", "bright", "quiet",
         "loud", "soft", "hard", "sweet", "bitter", "long", "short", "tall", "young")  # fmt: skip


def _sentence(rng: random.Random) -> list[str]:
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
    if rng.random() < 0.2:
        words[0] = words[0].capitalize()
    return words


def words(rng: random.Random, ph: Phrasings, ws: Workspace) -> Turn:
    sentence = _sentence(rng)
    kind = rng.choice(("sort", "count", "count_word"))
    text = " ".join(sentence)
    if kind == "sort":
        ordered = " ".join(sorted(sentence, key=str.lower))
        return Turn(
            family="words",
            user=_phrase(rng, ph, "words.sort", s=text),
            code=(
                f'words = "{text}".split()\n'
                'print("In alphabetical order:", " ".join(sorted(words, key=str.lower)))'
            ),
            observation=ToolObservation(text=f"In alphabetical order: {ordered}\n"),
            answer=f"In alphabetical order: {ordered}.",
            expected=(ordered,),
        )
    if kind == "count":
        return Turn(
            family="words",
            user=_phrase(rng, ph, "words.count", s=text),
            code=f'words = "{text}".split()\nprint(len(words))',
            observation=ToolObservation(text=f"{len(sentence)}\n"),
            answer=f"There are {len(sentence)} words.",
            expected=(f"{len(sentence)} words",),
        )
    # A word of the sentence, often repeated in it.
    word = rng.choice(sentence).lower()
    for _ in range(rng.choice((0, 0, 1, 2))):
        sentence.insert(rng.randint(0, len(sentence)), word)
    text = " ".join(sentence)
    count = text.lower().split().count(word)
    return Turn(
        family="words",
        user=_phrase(rng, ph, "words.count_word", s=text, w=word),
        code=f'words = "{text}".lower().split()\nprint(words.count("{word}"))',
        observation=ToolObservation(text=f"{count}\n"),
        answer=f'The word "{word}" appears {count} time{"s" if count != 1 else ""}.',
        expected=(f"appears {count} time",),
    )


# -- out of scope: requests no family covers (training's own; the evaluation's are in
# ``heldout``) ------------------------------------------------------------------------------

_SMALL_TALK = ("Hi", "Hi there", "Good morning!", "How are you?", "What's up?",
               "Nice to meet you.", "What can you do?", "What are you?", "Who are you?",
               "Are you a robot?", "Thank you!", "Bye!", "What model are you?", "help",
               "Can you do anything else?", "hmm", "ok", "Cool, thanks", "lol",
               "Tell me about yourself.", "Good night", "Are you there?", "test",
               "What should I ask you?", "Do you have feelings?", "I'm bored.",
               "You are great", "That's wrong.", "Why?", "Can we talk?")  # fmt: skip
_TOPICS = ("black holes", "the French revolution", "machine learning", "climate change",
           "the stock market", "democracy", "the immune system", "volcanoes", "bitcoin",
           "the Roman empire", "electric cars", "jazz", "the internet", "dinosaurs",
           "meditation", "inflation", "quantum physics", "the moon landing", "chess", "yoga",
           "coral reefs", "the printing press", "evolution", "nuclear power",
           "the brain")  # fmt: skip
_THINGS = ("a laptop", "a movie", "a podcast", "a restaurant", "a book", "a hiking trail",
           "a board game", "a programming language", "a city to visit", "a gift for my mom",
           "a name for my cat", "a song", "a recipe with eggs", "a TV show")  # fmt: skip
_PLACES = ("Paris", "Japan", "Brazil", "Canada", "Egypt", "London", "India", "Norway",
           "Mexico", "Kenya", "Berlin", "Peru", "Italy", "Seoul", "Chicago")  # fmt: skip
_LANGUAGES = ("French", "German", "Italian", "Japanese", "Portuguese", "Dutch", "Chinese")
_PHRASES = ("thank you", "where is the station", "I love you", "see you tomorrow",
            "how much does it cost", "happy birthday")  # fmt: skip
_CODE_TASKS = ("checks if a number is even", "parses a date", "reads a text file",
               "validates a phone number", "merges two dictionaries", "counts vowels",
               "connects to a database", "sends an HTTP request", "removes duplicates",
               "flattens a nested list", "converts Celsius to Fahrenheit",
               "downloads a web page", "computes a hash", "uploads a file to S3",
               "finds the longest common prefix", "checks if a string is a palindrome")  # fmt: skip
_PROGRAMMING = ("Python", "JavaScript", "Rust", "Go", "C++", "Bash", "TypeScript", "Ruby")
_OUT_OF_SCOPE_TEMPLATES = (
    "Explain {topic}.", "Tell me about {topic}.", "What is {topic}?",
    "Compose a poem on {topic}.", "Give me a summary of {topic}.",
    "Write an essay on {topic}.", "Why does {topic} matter?", "Make a joke about {topic}.",
    "Recommend {thing}.", "Can you suggest {thing}?", "I need {thing}. Any ideas?",
    "What is the population of {place}?", "Plan a trip to {place} for me.",
    "What language do they speak in {place}?", "What's the weather in {place} today?",
    "Tell me the history of {place}.", "What is the best food in {place}?",
    "How do you say {phrase} in {language}?", "What is '{phrase}' in {language}?",
    "How do I write code that {task} in {lang}?",
    "Show me {lang} code that {task}.", "Write a script that {task}.",
    "I need a {lang} program that {task}.", "Debug my {lang} code, it crashes.",
    "Give me {n} ideas about {topic}.", "List {n} facts about {topic}.",
    "What happened in {year}?", "Who was famous in {year}?", "Write a {n} line story.",
    "Install {package} for me.", "Update {package} to the latest version.",
    "Search the web for {topic}.", "Open a browser and look up {topic}.",
    "Email my team about {topic}.", "Set a reminder for tomorrow at {n} pm.",
    "Call my mom.", "Order a pizza.", "Book a flight to {place}.",
    "Draw a picture of a cat.", "Make a logo for my company.", "Compose a song about {topic}.",
    "Write a cover letter for a job in {place}.", "Help me with my homework on {topic}.",
    "Review my essay.", "What is the meaning of life?", "Is it going to rain?",
    "Should I learn {lang}?", "Which is better, {lang} or {lang2}?",
)  # fmt: skip
_PACKAGES = ("tensorflow", "django", "react", "docker", "numpy", "requests", "scikit-learn")


def out_of_scope_prompt(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(_SMALL_TALK)
    return rng.choice(_OUT_OF_SCOPE_TEMPLATES).format(
        topic=rng.choice(_TOPICS),
        thing=rng.choice(_THINGS),
        place=rng.choice(_PLACES),
        language=rng.choice(_LANGUAGES),
        phrase=rng.choice(_PHRASES),
        task=rng.choice(_CODE_TASKS),
        lang=rng.choice(_PROGRAMMING),
        lang2=rng.choice(_PROGRAMMING),
        n=rng.randint(2, 12),
        year=rng.randint(1800, 2023),
        package=rng.choice(_PACKAGES),
    )


def out_of_scope(rng: random.Random, prompt: str) -> Turn:
    return Turn(
        family=OUT_OF_SCOPE, user=prompt, code=None, observation=None, answer=CANNOT_DO, expected=()
    )


# -- hand-written cells --------------------------------------------------------------------


def hand_cell(rng: random.Random, ws: Workspace) -> HandCell:
    """A small cell as a user types it in the notebook; it may define a variable that a
    later question uses. Its logs are what the kernel printed."""
    kind = rng.randrange(7)
    v, n = rng.choice(VARIABLES), _signed(rng, 6, 0.1)
    if kind == 0:
        ws.variables[v] = n
        return HandCell(f"{v} = {n}", "")
    if kind == 1:
        ws.variables[v] = n
        return HandCell(f"{v} = {n}\nprint({v})", f"{n}\n")
    if kind == 2:
        a, b = _digits(rng, 4), _digits(rng, 4)
        return HandCell(f"print({a} + {b})", f"{a + b}\n")
    if kind == 3:
        k = rng.randint(1, 5)
        return HandCell(f"for i in range({k}):\n    print(i)", "".join(f"{i}\n" for i in range(k)))
    if kind == 4:
        word = rng.choice(WORDS)
        return HandCell(f'print("{word}".upper())', f"{word.upper()}\n")
    if kind == 5:
        return HandCell(
            rng.choice(("import math", "import numpy as np", "import pandas as pd")), ""
        )
    m = _digits(rng, 3)
    ws.variables[v] = m * 2
    return HandCell(f"{v} = {m} * 2\nprint({v})", f"{m * 2}\n")


# -- conversations -------------------------------------------------------------------------

TurnGenerator = Callable[[random.Random, Phrasings, Workspace], Turn]

GENERATORS: dict[str, TurnGenerator] = {
    "arithmetic": arithmetic,
    "state": state_set,
    "plot": plot,
    "csv": csv,
    "primes_fib": primes_fib,
    "file": file,
    "stats": stats,
    "dates": dates,
    "words": words,
}


def _styled(rng: random.Random, turn: Turn, casual: bool) -> Turn:
    return replace(turn, user=_casual(rng, turn.user)) if casual else turn


def family_conversation(
    rng: random.Random, family: str, phrasings: Phrasings = PHRASINGS, casual: bool = True
) -> Conversation:
    """One family on its own: a single turn (the state family: set, then use)."""
    ws = Workspace()
    system, instructions = _system(rng), _instructions(rng)
    turns = [_styled(rng, GENERATORS[family](rng, phrasings, ws), casual)]
    if family == "state":
        turns.append(_styled(rng, state_use(rng, phrasings, ws), casual))
    return Conversation(family, tuple(turns), system, instructions, dict(ws.files))


@dataclass(frozen=True)
class Mix:
    """How a mixed conversation is drawn."""

    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            "arithmetic": 1.0,
            "state_set": 0.5,
            "state_use": 0.7,
            "plot": 0.7,
            "csv": 1.0,
            "primes_fib": 1.0,
            "file": 0.7,
            "stats": 1.0,
            "dates": 1.0,
            "words": 1.0,
            OUT_OF_SCOPE: 0.7,
        }
    )
    hand_cell_rate: float = 0.12


def mixed_conversation(
    rng: random.Random,
    n_turns: int,
    phrasings: Phrasings = PHRASINGS,
    out_of_scope_prompts: Sequence[str] | None = None,
    mix: Mix | None = None,
    casual: bool = True,
) -> Conversation:
    """``n_turns`` turns of families in any order, with hand cells before some and
    questions about variables that earlier turns or cells set."""
    mix = mix or Mix()
    ws = Workspace()
    system, instructions = _system(rng), _instructions(rng)
    turns: list[Turn] = []
    for _ in range(n_turns):
        cells: list[HandCell] = []
        while rng.random() < mix.hand_cell_rate and len(cells) < 2:
            cells.append(hand_cell(rng, ws))
        choices = [k for k in mix.weights if k != "state_use" or ws.variables]
        kind = rng.choices(choices, [mix.weights[k] for k in choices])[0]
        if kind == OUT_OF_SCOPE:
            prompt = (
                rng.choice(out_of_scope_prompts)
                if out_of_scope_prompts is not None
                else out_of_scope_prompt(rng)
            )
            turn = out_of_scope(rng, prompt)
        elif kind == "state_use":
            turn = state_use(rng, phrasings, ws)
        elif kind == "state_set":
            turn = state_set(rng, phrasings, ws)
        else:
            turn = GENERATORS[kind](rng, phrasings, ws)
        turns.append(
            replace(_styled(rng, turn, casual and kind != OUT_OF_SCOPE), cells=tuple(cells))
        )
    return Conversation("mixed", tuple(turns), system, instructions, dict(ws.files))


def conversations(
    seed: int,
    count: int,
    families: Sequence[str] = FAMILIES,
    phrasings: Phrasings = PHRASINGS,
    casual: bool = True,
) -> list[Conversation]:
    """``count`` single-family conversations, families taken in turn, from one stream."""
    rng = random.Random(seed)
    return [
        family_conversation(rng, families[i % len(families)], phrasings, casual)
        for i in range(count)
    ]


# -- rendering for training --------------------------------------------------------------


@dataclass(frozen=True)
class TrainingExample:
    tokens: list[int]
    mask: list[bool]  # True where the assistant wrote the token: the loss is taken there
    family: str


class MessageEncoder:
    """``encoding.render(message)``, fast enough to render every training step's data.

    Harmony renders a message as its header, the text, and a closing token. The header
    and the closing depend only on the author, channel, recipient and content type, so
    they are rendered once per kind (from the same message with no text) and the text is
    encoded directly, which is a hundred times faster than a full render. System and
    developer messages are rendered by harmony itself (``tests/demo`` checks the rest
    token for token against ``encoding.render``).
    """

    def __init__(self, renderer: HarmonyRenderer) -> None:
        self.encoding = renderer.encoding
        self._frames: dict[tuple[object, ...], list[int]] = {}
        self._developer: dict[str, list[int]] = {}

    def __call__(self, message: Message) -> list[int]:
        role = message.author.role
        text = "".join(getattr(part, "text", "") for part in message.content)
        if role == Role.SYSTEM:
            return self.encoding.render(message)
        if role == Role.DEVELOPER:
            text_key = repr(message.to_dict())
            if text_key not in self._developer:
                self._developer[text_key] = self.encoding.render(message)
            return self._developer[text_key]
        key = (role, message.author.name, message.channel, message.recipient, message.content_type)
        frame = self._frames.get(key)
        if frame is None:
            empty = Message.from_dict(
                {**message.to_dict(), "content": [{"type": "text", "text": ""}]}
            )
            frame = self._frames[key] = self.encoding.render(empty)
        # No special tokens in the data's texts; checking for them is the slow part.
        return [*frame[:-1], *self.encoding.encode(text, disallowed_special=()), frame[-1]]


def render_labelled(
    renderer: HarmonyRenderer,
    labelled: Sequence[tuple[Message, bool]],
    encoder: MessageEncoder | None = None,
) -> tuple[list[int], list[bool], list[bool]]:
    """Tokens of a conversation; per token, whether it is in the loss; and whether it is
    a user's text.

    The loss takes the tokens of the assistant's own messages after their
    ``<|start|>assistant`` (which the prompt supplies), as ``render_training`` does, but
    never a hand cell's, and never the ``<|end|>`` that closes a replayed final answer
    (the model wrote ``<|return|>`` there and stopped).
    """
    render = encoder or renderer.encoding.render
    end = renderer.encoding.encode("<|end|>", allowed_special="all")[0]
    tokens: list[int] = []
    mask: list[bool] = []
    user: list[bool] = []
    for index, (message, learnt) in enumerate(labelled):
        rendered = render(message)
        role = message.author.role
        if role == Role.ASSISTANT and learnt:
            if index == len(labelled) - 1 and message.channel == "final":
                # A final answer ends the turn with <|return|>, not <|end|>.
                rendered = [*rendered[:-1], renderer.return_token]
            flags = [False, False] + [True] * (len(rendered) - 2)
            if rendered[-1] == end:
                flags[-1] = False
        else:
            flags = [False] * len(rendered)
        tokens += rendered
        mask += flags
        # <|start|>user<|message|> ... <|end|>: the text between.
        text = role == Role.USER
        user += [False] * 3 + [text] * (len(rendered) - 4) + [False]
    return tokens, mask, user


def render_example(renderer: HarmonyRenderer, conversation: Conversation) -> TrainingExample:
    """The visible conversation, with the assistant's messages in the loss."""
    tokens, mask, _ = render_labelled(renderer, conversation.labelled_messages())
    return TrainingExample(tokens, mask, conversation.family)
