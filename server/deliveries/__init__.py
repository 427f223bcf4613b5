"""Sending webhooks: what every API process does with the deliveries the task store writes.

`loop` claims due deliveries from the outbox (server.tasks.ports.Outbox) and sends them,
`sender` makes one signed attempt, `policy` says what its answer means, `bodies` makes the body
of the native format (a door's provider's formats live with the door: server.compat). See
docs/webhooks.md.
"""
