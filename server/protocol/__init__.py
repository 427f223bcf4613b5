"""The event protocol, free of I/O: envelopes, seq joins, per-subscriber flow control.

Everything here is plain data and pure functions so it is tested directly, without a server.
"""
