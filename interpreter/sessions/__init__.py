"""Sessions: which conversation owns which sandbox, and for how long.

``pool`` keeps sandboxes warm; ``manager`` hands them to sessions, serialises their
executions, expires idle ones, and re-adopts live ones after a restart. Nothing here
imports ``docker``: sandboxes come from an injected ``SandboxBackend``.
"""
