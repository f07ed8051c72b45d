"""Seeded synthetic tool-use conversations for the demo model, rendered in harmony.

Each family generator draws a task (numbers, names, phrasing) from a ``random.Random``,
writes the code a careful assistant would send to python, and computes the tool's output
*truthfully* in this process, as the sandbox's kernel would print it, so the final answer
the model learns to write only ever quotes real output. The conversation is rendered with
``HarmonyRenderer.render_training``: the bytes the model learns are the bytes the service
shows it.

Training draws from ``TRAIN_SEED``-derived streams, evaluation from ``EVAL_SEED``; the two
never share a stream.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from openai_harmony import Message

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
EVAL_SEED = 1_000_003  # never used for training data

FAMILIES = ("arithmetic", "state", "plot", "csv", "primes_fib", "file")


@dataclass(frozen=True)
class Turn:
    """One user request and the assistant's single python call + final answer."""

    user: str
    code: str
    observation: ToolObservation
    answer: str
    # Substrings a correct final answer contains (the real values it quotes).
    expected: tuple[str, ...]

    @property
    def tool_output(self) -> str:
        return format_tool_output(self.observation)


@dataclass(frozen=True)
class Conversation:
    family: str
    turns: tuple[Turn, ...]
    system: SystemPrompt
    instructions: str | None = None
    # Files the client uploads to /mnt/data before the first request: name -> text.
    files: dict[str, str] = field(default_factory=dict)

    def messages(self, upto_turn: int | None = None) -> list[Message]:
        """The whole conversation as harmony messages, as the service would replay it."""
        messages = [self.system.to_message()]
        if self.instructions:
            messages.append(developer_message(self.instructions))
        for turn in self.turns[: upto_turn if upto_turn is not None else len(self.turns)]:
            messages += [
                user_message(turn.user),
                python_call_message(turn.code),
                tool_output_message(turn.tool_output),
                final_message(turn.answer),
            ]
        return messages


# -- shared vocabulary of the prompts ----------------------------------------------------

INSTRUCTIONS = (
    "Be concise.",
    "Answer briefly.",
    "You are a helpful assistant.",
    "Use the python tool for every calculation.",
    "Keep your answers short and precise.",
    "You help users with data and numbers.",
)


def _system(rng: random.Random) -> SystemPrompt:
    day = datetime.date(2024, 1, 1) + datetime.timedelta(days=rng.randrange(4 * 365))
    effort: Literal["low", "medium", "high"] = rng.choice(("low", "medium", "medium", "high"))
    return SystemPrompt(conversation_start_date=day.isoformat(), reasoning_effort=effort)


def _instructions(rng: random.Random) -> str | None:
    return rng.choice(INSTRUCTIONS) if rng.random() < 0.25 else None


def _number(rng: random.Random, max_digits: int) -> int:
    """An integer whose digit count is uniform in 1..max_digits, so short and long
    numbers are equally common (uniform values would be almost all long)."""
    digits = rng.randint(1, max_digits)
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# -- families ----------------------------------------------------------------------------

_ARITHMETIC_OPS: dict[str, tuple[str, ...]] = {
    "+": ("What is {a} + {b}?", "Compute {a} plus {b}.", "Add {a} and {b}.",
          "What's {a} + {b}?", "Calculate the sum of {a} and {b}.", "{a} + {b} = ?"),
    "-": ("What is {a} - {b}?", "Compute {a} minus {b}.", "Subtract {b} from {a}.",
          "What's {a} - {b}?", "Calculate {a} - {b}.", "{a} - {b} = ?"),
    "*": ("What is {a} * {b}?", "Compute {a} times {b}.", "Multiply {a} by {b}.",
          "What's {a} * {b}?", "Calculate the product of {a} and {b}.", "{a} * {b} = ?",
          "How much is {a} multiplied by {b}?"),
}  # fmt: skip


def arithmetic(rng: random.Random, max_digits: int = 5) -> Conversation:
    op = rng.choice(tuple(_ARITHMETIC_OPS))
    a, b = _number(rng, max_digits), _number(rng, max_digits)
    if op == "-" and rng.random() < 0.5:
        a, b = max(a, b), min(a, b)  # mostly non-negative, sometimes not
    result = {"+": a + b, "-": a - b, "*": a * b}[op]
    turn = Turn(
        user=rng.choice(_ARITHMETIC_OPS[op]).format(a=a, b=b),
        code=f"print({a} {op} {b})",
        observation=ToolObservation(text=f"{result}\n"),
        answer=f"The result is {result}.",
        expected=(str(result),),
    )
    return Conversation("arithmetic", (turn,), _system(rng), _instructions(rng))


VARIABLES = ("x", "y", "z", "a", "b", "n", "k", "m", "total", "count", "value", "price",
             "speed", "score", "width", "size")  # fmt: skip

_SET_PHRASES = ("Set {v} to {n}.", "Let {v} = {n}.", "Store {n} in a variable called {v}.",
                "Assign {n} to {v}.", "{v} = {n}. Remember it.", "Please set {v} to {n}.",
                "Create a variable {v} with the value {n}.")  # fmt: skip

# (question templates, code template, function of the variable's value)
_FOLLOW_UPS: tuple[tuple[tuple[str, ...], str, Callable[[int, int], int]], ...] = (
    (("What is {v} squared?", "Now compute {v} squared.", "And {v} squared?",
      "What's the square of {v}?"), "print({v} ** 2)", lambda n, k: n**2),
    (("What is {v} cubed?", "Now compute {v} cubed.", "What's the cube of {v}?"),
     "print({v} ** 3)", lambda n, k: n**3),
    (("What is {v} times {k}?", "Multiply {v} by {k}.", "Now compute {v} * {k}."),
     "print({v} * {k})", lambda n, k: n * k),
    (("What is {v} plus {k}?", "Add {k} to {v}. What do you get?", "Now compute {v} + {k}."),
     "print({v} + {k})", lambda n, k: n + k),
    (("What is {v} minus {k}?", "Subtract {k} from {v}.", "Now compute {v} - {k}."),
     "print({v} - {k})", lambda n, k: n - k),
)  # fmt: skip


def state(rng: random.Random) -> Conversation:
    """Two responses: the first sets a variable, the second (chained with
    ``previous_response_id``) uses it without restating its value."""
    v, n = rng.choice(VARIABLES), _number(rng, 4)
    first = Turn(
        user=rng.choice(_SET_PHRASES).format(v=v, n=n),
        code=f"{v} = {n}\nprint({v})",
        observation=ToolObservation(text=f"{n}\n"),
        answer=f"{v} is now {n}.",
        expected=(str(n),),
    )
    questions, code, fn = rng.choice(_FOLLOW_UPS)
    k = _number(rng, 3)
    result = fn(n, k)
    second = Turn(
        user=rng.choice(questions).format(v=v, k=k),
        code=code.format(v=v, k=k),
        observation=ToolObservation(text=f"{result}\n"),
        answer=f"The result is {result}.",
        expected=(str(result),),
    )
    return Conversation("state", (first, second), _system(rng), _instructions(rng))


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

_PLOT_PHRASES = ("Plot {f} from {a} to {b}.", "Plot {f} for x between {a} and {b}.",
                 "Draw a graph of {f} over [{a}, {b}].",
                 "Can you plot {f} from x = {a} to x = {b}?",
                 "Make a plot of y = {f} on the range {a} to {b}.",
                 "Show me {f} for x from {a} to {b}.")  # fmt: skip


def plot(rng: random.Random) -> Conversation:
    name = rng.choice(tuple(PLOT_FUNCTIONS))
    expr, positive = PLOT_FUNCTIONS[name]
    if positive:
        a = rng.randint(1, 5)
        b = a + rng.randint(1, 50)
    else:
        a = rng.randint(-20, 5)
        b = a + rng.randint(1, 30)
    code = (
        "import numpy as np\n"
        "import matplotlib.pyplot as plt\n"
        f"x = np.linspace({a}, {b}, 200)\n"
        f"plt.plot(x, {expr})\n"
        f'plt.title("{name}")\n'
        "plt.show()"
    )
    turn = Turn(
        user=rng.choice(_PLOT_PHRASES).format(f=name, a=a, b=b),
        code=code,
        observation=ToolObservation(images=1),
        answer=f"Here is the plot of {name} from {a} to {b}.",
        expected=(name, str(a), str(b)),
    )
    return Conversation("plot", (turn,), _system(rng), _instructions(rng))


CSV_FILES = ("sales", "data", "scores", "orders", "results", "measurements",
             "people", "inventory", "survey", "weather", "students", "products", "trips",
             "report")  # fmt: skip
CSV_COLUMNS = ("price", "amount", "score", "age", "height", "weight", "revenue",
               "temperature", "units", "quantity", "cost", "duration", "distance", "rating",
               "salary", "year")  # fmt: skip
_CSV_LABELS = ("name", "city", "region", "category", "id", "date", "status")
# Row counts whose reciprocal is a short decimal, so the mean of an integer column prints
# exactly (no rounding code whose result could differ between numpy and Python).
_CSV_ROWS = (8, 10, 16, 20, 25, 32, 40, 50, 64, 80, 100, 125, 160, 200)

_CSV_PHRASES = ("I uploaded {f}. Summarise it: rows, columns and the mean of {c}.",
                ("I uploaded {f}. How many rows and columns does it have, "
                 "and what is the mean of {c}?"),
                "Here is {f}. Give me the number of rows, the columns and the average {c}.",
                "Summarize {f} for me: rows, columns, and the mean of the {c} column.",
                "I uploaded {f}. Please describe its shape and the mean {c}.")  # fmt: skip


def csv(rng: random.Random) -> Conversation:
    filename = rng.choice(CSV_FILES) + ".csv"
    n_columns = rng.randint(2, 5)
    numeric = rng.sample(CSV_COLUMNS, n_columns - 1)
    columns = [rng.choice(_CSV_LABELS), *numeric]
    rng.shuffle(columns)
    target = rng.choice(numeric)
    rows = rng.choice(_CSV_ROWS)
    table = []
    for i in range(rows):
        row = []
        for column in columns:
            row.append(f"{column}{i}" if column in _CSV_LABELS else str(rng.randint(0, 999)))
        table.append(row)
    text = ",".join(columns) + "\n" + "".join(",".join(row) + "\n" for row in table)
    index = columns.index(target)
    # pandas sums an int64 column exactly and divides once: the same float as here.
    mean = sum(int(row[index]) for row in table) / rows
    code = (
        "import pandas as pd\n"
        f'df = pd.read_csv("/mnt/data/{filename}")\n'
        "print(df.shape)\n"
        'print(", ".join(df.columns))\n'
        f'print(df["{target}"].mean())'
    )
    joined = ", ".join(columns)
    turn = Turn(
        user=rng.choice(_CSV_PHRASES).format(f=filename, c=target),
        code=code,
        observation=ToolObservation(text=f"({rows}, {n_columns})\n{joined}\n{mean!r}\n"),
        answer=(
            f"{filename} has {rows} rows and {n_columns} columns: {joined}. "
            f"The mean of {target} is {mean!r}."
        ),
        expected=(f"{rows} rows", f"{n_columns} columns", repr(mean)),
    )
    return Conversation("csv", (turn,), _system(rng), _instructions(rng), {filename: text})


_PRIME_PHRASES = ("How many primes are there below {n}?", "Count the primes less than {n}.",
                  "How many prime numbers are smaller than {n}?",
                  "What is the number of primes below {n}?")  # fmt: skip
_FIB_PHRASES = ("What is the {o} Fibonacci number?", "Compute the {o} Fibonacci number.",
                "Find Fibonacci number {n}.", "Give me the {o} Fibonacci number.",
                "What is F({n}) in the Fibonacci sequence (F(1) = F(2) = 1)?")  # fmt: skip


def _count_primes_below(n: int) -> int:
    sieve = bytearray([1]) * max(n, 2)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(n**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
    return sum(sieve[:n])


def primes_fib(rng: random.Random) -> Conversation:
    if rng.random() < 0.5:
        n = rng.randint(3, 10 ** rng.randint(2, 5))
        count = _count_primes_below(n)
        turn = Turn(
            user=rng.choice(_PRIME_PHRASES).format(n=n),
            # Trial division: short code, under a second for n up to 100,000.
            code=(
                "print(sum(all(k % d for d in range(2, int(k ** 0.5) + 1)) "
                f"for k in range(2, {n})))"
            ),
            observation=ToolObservation(text=f"{count}\n"),
            answer=f"There are {count} primes below {n}.",
            expected=(str(count),),
        )
    else:
        n = rng.randint(1, 100)
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        turn = Turn(
            user=rng.choice(_FIB_PHRASES).format(n=n, o=_ordinal(n)),
            code=f"a, b = 0, 1\nfor _ in range({n}):\n    a, b = b, a + b\nprint(a)",
            observation=ToolObservation(text=f"{a}\n"),
            answer=f"Fibonacci number {n} is {a}.",
            expected=(str(a),),
        )
    return Conversation("primes_fib", (turn,), _system(rng), _instructions(rng))


FILE_NAMES = ("squares", "cubes", "numbers", "output", "list", "values", "table", "results",
              "data", "series", "notes", "powers")  # fmt: skip
# what the user asks for -> the expression written per line
_FILE_KINDS = {"squares": "i ** 2", "cubes": "i ** 3", "numbers": "i", "doubles": "2 * i"}
_FILE_PHRASES = ("Write the {kind} of {a} to {b} to {f}.", "Save the {kind} of {a} to {b} in {f}.",
                 "Create a file {f} with the {kind} of {a} to {b}, one per line.",
                 "Put the {kind} of the numbers {a} to {b} into {f}.")  # fmt: skip


def file(rng: random.Random) -> Conversation:
    kind = rng.choice(tuple(_FILE_KINDS))
    filename = rng.choice(FILE_NAMES) + rng.choice((".txt", ".txt", ".csv"))
    a = rng.randint(0, 20)
    b = a + rng.randint(1, 60)
    path = f"/mnt/data/{filename}"
    code = (
        f'with open("{path}", "w") as f:\n'
        f"    for i in range({a}, {b} + 1):\n"
        f'        f.write(f"{{{_FILE_KINDS[kind]}}}\\n")'
    )
    turn = Turn(
        user=rng.choice(_FILE_PHRASES).format(kind=kind, a=a, b=b, f=filename),
        code=code,
        observation=ToolObservation(new_files=(path,)),
        answer=f"I wrote the {kind} of {a} to {b} to {path}.",
        expected=(path,),
    )
    return Conversation("file", (turn,), _system(rng), _instructions(rng))


def file_contents(conversation: Conversation) -> str:
    """What the file family's file must hold, for checking the sandbox's copy."""
    turn = conversation.turns[0]
    env: dict[str, object] = {}
    lines = turn.code.replace("/mnt/data/", "").splitlines()
    start, stop = lines[1].split("range(")[1].split(", ")
    expr = lines[2].split("{")[1].split("}")[0]
    values = range(int(start), int(stop.split(" ")[0]) + 1)
    return "".join(f"{eval(expr, env, {'i': i})}\n" for i in values)


GENERATORS: dict[str, Callable[[random.Random], Conversation]] = {
    "arithmetic": arithmetic,
    "state": state,
    "plot": plot,
    "csv": csv,
    "primes_fib": primes_fib,
    "file": file,
}


def conversations(seed: int, count: int, families: Sequence[str] = FAMILIES) -> list[Conversation]:
    """``count`` conversations, families taken in turn, from one seeded stream."""
    rng = random.Random(seed)
    return [GENERATORS[families[i % len(families)]](rng) for i in range(count)]


# -- rendering for training --------------------------------------------------------------


@dataclass(frozen=True)
class TrainingExample:
    tokens: list[int]
    mask: list[bool]  # True where the assistant wrote the token: the loss is taken there
    family: str


def render_example(renderer: HarmonyRenderer, conversation: Conversation) -> TrainingExample:
    """The whole conversation, with every assistant message in the loss."""
    tokens, mask = renderer.render_training(conversation.messages())
    example = TrainingExample(tokens, mask, conversation.family)
    mask_replayed_ends(renderer, example)
    return example


def mask_replayed_ends(renderer: HarmonyRenderer, example: TrainingExample) -> None:
    """Take an earlier turn's closing ``<|end|>`` out of the loss.

    An earlier turn's final answer is replayed with ``<|end|>`` (the service replays it
    so), but the model wrote ``<|return|>`` there: learning ``<|end|>`` would teach it to
    end a turn without stopping. Calls end with ``<|call|>``, so only finals are touched.
    """
    end = renderer.encoding.encode("<|end|>", allowed_special="all")[0]
    last = len(example.tokens) - 1
    for index, token in enumerate(example.tokens):
        if example.mask[index] and token == end and index < last:
            example.mask[index] = False
