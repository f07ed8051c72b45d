"""The model: harmony rendering and parsing, token generation, prefix caching.

This is the only package that imports torch and transformers, and only inside the
backends that need them (``transformers_backend``), so ``interpreter/`` can import the
harmony and generator interfaces without the model stack installed.

- ``harmony``: rendering conversations to tokens, parsing completions into events.
- ``generator``: the ``Generator`` protocol the service holds.
- ``loading``: ``load_generator(spec)``, a model spec string to a ``Generator``.
- ``transformers_backend``: ``TransformersGenerator``, a model in this process
  (torch, transformers), with ``prefix_cache`` and ``shapes`` (``random:`` specs).
- ``token_map``: the id mapping of vocabulary-subset checkpoints (pure Python).
- ``server``, ``protocol``, ``http_client``: the served mode
  (``python -m model_runner serve``) and ``HTTPGenerator``, its client.
- ``errors``: what every generator raises, local or remote.
- ``demo``: the small demo model and its training.
"""
