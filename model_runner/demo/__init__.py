"""The demo model: a small gpt-oss trained by this project on synthetic tool-use chats.

It lets the whole loop (Responses API, harmony, sandbox) run offline on a CPU. It is a
demonstrator that knows six task families, not a general assistant.

- ``data``: seeded generators of harmony conversations per family, with truthfully
  computed tool outputs; ``TRAIN_SEED`` for training, ``EVAL_SEED`` for evaluation.
- ``train``: the trainer (``python -m model_runner.demo.train``).
- ``evaluate`` and ``local_kernel``: offline accuracy, the generation loop in-process with
  a local Python standing in for the sandbox (``bench/eval_demo.py`` uses the real API).
- ``checkpoint/``: the shipped weights and ``token_map.json``; the service loads them with
  ``model_runner.loading.load_generator("demo")``.

Imports ``model_runner.harmony`` and ``model_runner.token_map``; torch only in ``train``
and (lazily) ``evaluate``. The service never imports this package.
"""
