"""Who may do what: API keys (`keys`), checking them on requests and sockets (`auth`), and what a
browser page on another site may reach (`browser`); how much any client may send and hold (`body`,
`slowloris`, `ratelimit`, `throttle`). The threat model is docs/security.md."""
