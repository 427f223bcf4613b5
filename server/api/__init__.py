"""The HTTP and WebSocket surface. `routes` lists every endpoint and the module that serves it."""
