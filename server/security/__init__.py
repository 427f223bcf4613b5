"""Who may do what: API keys (`keys`, and where they are kept: `KeyStore`), checking them on
requests and sockets (`auth`, `keyring`, Wiro's request signature in `wiro_signature`), and what a
browser page on another site may reach (`browser`); how much any client may send and hold (`body`,
`slowloris`, `ratelimit`, `throttle`); where the server may send a webhook (`webhooks`). The threat model is docs/security.md; the `keys` command is
server.cli.keys."""
