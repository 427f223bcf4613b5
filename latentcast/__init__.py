"""Latentcast: self-hosted Stable Diffusion 3 that streams every job's life, with live previews.

The installed package is one namespace built from the repository's top-level folders:
`latentcast.wire` (latentcast/wire.py: the wire protocol, which client and server both import),
`latentcast.client` (client/: the Python client, what `pip install latentcast` brings),
`latentcast.server` (server/: the service, `pip install "latentcast[server]"`) and
`latentcast.static` (static/: the browser pages, package data).

    from latentcast import AsyncClient, Client
"""

from latentcast.client import *  # noqa: F403 (the client's public names are the package's)
from latentcast.client import __all__ as __all__  # (`as`: re-exported, not unused)
from latentcast.client.version import __version__ as __version__
