"""DSPEx's Python plugins: capability services that the Go host drives over gRPC.

Each plugin is one module run as ``python -m dspex_plugins.<name>``; all of them start
through :mod:`dspex_plugins.sdk`, which speaks hashicorp/go-plugin's handshake and serves
the services every plugin shares. The contracts are in ``bridge/proto`` and their
generated code in :mod:`dspex_plugins.proto`. See docs/plugins.md.
"""

from __future__ import annotations

__version__ = "0.1.0"
