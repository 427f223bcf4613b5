"""The browser pages, dashboard and embed: package data, served by `latentcast.server.api.pages`."""
