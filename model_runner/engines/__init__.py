"""Generators of models served by another process, over HTTP: this project's own runner
(``python -m model_runner serve``), vLLM, SGLang and llama.cpp's server.

Each speaks its engine's token-in, token-out wire format; ``remote.RemoteGenerator``
holds what they share (probing at start-up, typed errors, the context limit). None of
these modules imports torch.
"""
