"""The evaluation's own phrasings and out-of-scope prompts: never used for training.

Written before the training phrasings and never tuned on. ``data`` and ``train`` do not
import this module (``tests/demo`` checks both that and that no template here is also a
training template); only ``evaluate`` and ``bench/eval_demo.py`` do. The slots are the
training generators' (``{a}``, ``{b}``, ``{v}``, ...), so the same code draws the numbers,
names and truthful outputs for both; only the words around them differ.
"""

from __future__ import annotations

PHRASINGS: dict[str, tuple[str, ...]] = {
    # -- arithmetic: {a}, {b}
    "arithmetic.add": (
        "Could you tell me the total of {a} and {b}?",
        "I need {a} added to {b}.",
        "Work out {a} + {b} please.",
        "hey, {a} plus {b} equals what?",
        "Sum up {a} and {b} for me.",
    ),
    "arithmetic.sub": (
        "Could you tell me what {a} minus {b} is?",
        "I need {a} - {b}.",
        "Work out {a} minus {b} please.",
        "hey, {a} - {b} equals what?",
        "Take {b} off {a}. What's left?",
    ),
    "arithmetic.mul": (
        "Could you tell me what {a} times {b} is?",
        "I need {a} multiplied with {b}.",
        "Work out {a} * {b} please.",
        "hey, {a} times {b} equals what?",
        "Find the product {a} * {b}.",
    ),
    # -- state: a variable set in one turn, used in a later one
    "state.set": (
        "Define {v} as {n}.",
        "Put {n} into {v}.",
        "Save {n} as {v}.",
        "Can you set a variable {v} equal to {n}?",
        "Initialize {v} with {n}.",
    ),
    "state.square": (
        "And what do you get when you square {v}?",
        "Tell me {v} squared.",
        "Give me the square of {v}.",
    ),
    "state.cube": (
        "And what do you get when you cube {v}?",
        "Tell me {v} cubed.",
        "Give me the cube of {v}.",
    ),
    "state.times": (
        "Tell me {v} multiplied by {k}.",
        "What do I get if I multiply {v} by {k}?",
    ),
    "state.plus": (
        "Tell me {v} plus {k}.",
        "What do I get if I add {k} to {v}?",
    ),
    "state.minus": (
        "Tell me {v} minus {k}.",
        "What do I get if I subtract {k} from {v}?",
    ),
    # -- plot: {f}, {a}, {b}
    "plot.plot": (
        "Could you graph {f} between {a} and {b}?",
        "I'd like to see {f} on the interval from {a} to {b}.",
        "Visualize {f} for x in [{a}, {b}].",
        "please chart {f}, x from {a} up to {b}",
        "Sketch the curve of {f} from x={a} to x={b}.",
    ),
    # -- csv: {f} (the uploaded file), {c} (a numeric column)
    "csv.summary": (
        "Could you look at {f} and tell me its size, its columns and the average of {c}?",
        "What's in {f}? I need the row count, the column names and mean {c}.",
        "I just put {f} in the container. Rows, columns, and average {c}, please.",
        "Give me an overview of {f}: how big it is, which columns, mean of {c}.",
        "Check {f} for me: number of rows and columns, and the {c} average.",
    ),
    # -- primes and Fibonacci: {n}, {o} (the ordinal of n)
    "primes_fib.primes": (
        "Could you count how many primes lie below {n}?",
        "I need the number of primes smaller than {n}.",
        "how many primes exist under {n}?",
        "Tell me the count of prime numbers below {n}.",
    ),
    "primes_fib.fib": (
        "Could you find the {o} number in the Fibonacci sequence?",
        "I need Fibonacci number {n}.",
        "what's the {o} Fibonacci term?",
        "Tell me the Fibonacci number at position {n}.",
    ),
    # -- file: {kind} (squares, cubes, numbers, doubles), {a}, {b}, {f}
    "file.file": (
        "Could you save the {kind} of {a} through {b} to a file named {f}?",
        "I need a file {f} holding the {kind} of {a} to {b}.",
        "Make {f} and fill it with the {kind} from {a} to {b}.",
        "please dump the {kind} of {a}..{b} into {f}",
    ),
    # -- stats: {xs} (a list of numbers as the user types it)
    "stats.all": (
        "Could you give me summary statistics for {xs}?",
        "I need the mean, median, standard deviation, min and max of {xs}.",
        "Describe these numbers for me: {xs}",
    ),
    "stats.mean": (
        "Could you average these numbers: {xs}?",
        "I need the mean of {xs}.",
    ),
    "stats.median": (
        "Could you find the median of {xs}?",
        "I need the middle value (median) of {xs}.",
    ),
    "stats.stdev": (
        "Could you work out the standard deviation of {xs}?",
        "I need the std of {xs}.",
    ),
    "stats.minmax": (
        "Could you find the smallest and largest of {xs}?",
        "I need the min and max of {xs}.",
    ),
    # -- dates: {d1}, {d2}, {d} (dates as the user types them)
    "dates.between": (
        "Could you count the days from {d1} to {d2}?",
        "I need the number of days separating {d1} and {d2}.",
        "how many days lie between {d1} and {d2}?",
        "Tell me how far apart {d1} and {d2} are, in days.",
    ),
    "dates.weekday": (
        "Could you tell me the day of the week for {d}?",
        "I need to know which weekday {d} is.",
        "what day of the week is {d}?",
        "Tell me the weekday of {d}.",
    ),
    # -- words: {s} (a sentence, quoted by the template), {w} (one of its words)
    "words.sort": (
        'Could you put the words of "{s}" in alphabetical order?',
        'I need "{s}" with its words sorted alphabetically.',
        'Alphabetize the words in "{s}".',
        'please sort "{s}" word by word, a to z',
    ),
    "words.count": (
        'Could you count the words in "{s}"?',
        'I need the word count of "{s}".',
        'how many words does "{s}" have?',
        'Tell me the number of words in "{s}".',
    ),
    "words.count_word": (
        'Could you count how often "{w}" occurs in "{s}"?',
        'I need the number of times "{w}" shows up in "{s}".',
        'how many times is "{w}" in "{s}"?',
    ),
}

# Requests outside every family: greetings, general questions, code for other things.
OUT_OF_SCOPE: tuple[str, ...] = (
    # greetings and small talk
    "Hello!",
    "good evening, how's it going?",
    "Who made you?",
    "Are you ChatGPT?",
    "Thanks, that was helpful.",
    "yo",
    "What's your name?",
    "Can you help me?",
    # general questions
    "What is the capital of Australia?",
    "Who painted the Mona Lisa?",
    "Explain how photosynthesis works.",
    "Why is the sky blue?",
    "What is the difference between a virus and a bacterium?",
    "Recommend a good science fiction novel.",
    "How tall is Mount Everest?",
    "Translate 'good morning' into Spanish.",
    "Write a haiku about autumn leaves.",
    "Tell me a fun fact about octopuses.",
    "Who won the football world cup in 2014?",
    "What should I cook for dinner tonight?",
    "Give me three tips for a job interview.",
    "Summarize the plot of Hamlet.",
    "What does GDP stand for?",
    "How do vaccines work?",
    "Is coffee bad for you?",
    "Write a short story about a dragon who is afraid of fire.",
    "What time zone is Tokyo in?",
    "Explain the theory of relativity in simple terms.",
    "How many moons does Jupiter have?",
    "What are the symptoms of the flu?",
    # code and tasks for other things
    "Write a Python function that reverses a string.",
    "How do I install numpy?",
    "Scrape the headlines from a news website.",
    "Fix this code: for i in range(10) print(i)",
    "Train a neural network on the MNIST dataset.",
    "Write a SQL query that joins two tables.",
    "Send an email to my boss saying I'm late.",
    'Convert this JSON to YAML: {"a": 1}',
    "Build me a website for my bakery.",
    "Write a regular expression that matches email addresses.",
    "Download the latest Bitcoin price.",
    "Create a class for a bank account in Java.",
    "Explain what a Python decorator is.",
    "Make a REST API with Flask.",
    "How do I center a div in CSS?",
    "Resize the image I uploaded to 200 by 200 pixels.",
    "Write unit tests for a linked list.",
    "What's the time complexity of quicksort?",
    "Generate a random password for me.",
    "Read my emails and tell me which are important.",
)
