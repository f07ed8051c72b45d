"""Chat Completions with server-side code execution: ``POST /v1/chat/completions`` runs
the same model/tool loop as the Responses API (``interpreter.responses``: its loop, code
tool and ``TurnBuilder``), and writes the code and its outputs into the assistant's
Markdown, so any Chat Completions front-end shows them.

``protocol`` is the request we accept, ``transcript`` reads its messages (and names the
conversation they continue), ``wire`` writes the SDK's chat types, ``store`` remembers
conversations and their containers, ``serving`` runs a turn. Imports ``responses`` and
``sessions``; nothing imports it but the API.
"""
