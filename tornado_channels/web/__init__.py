"""The web edges on Tornado: routes, handlers, WebSocket and SSE subscribers, publishing."""
