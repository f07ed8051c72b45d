"""The Code Interpreter service: HTTP APIs, sessions, and sandboxes.

Layers, each importing only those below it:
``api`` (FastAPI routers, wire shapes) -> ``responses`` (the model/tool loop) ->
``sessions`` (who owns which sandbox, for how long) -> ``sandboxes`` (a kernel in an
isolated container). The model enters as an injected ``model_runner.generator.Generator``;
nothing here imports torch.
"""
