"""The pure core: names, subscriber trie, publications, history, frames, HTTP and WebSocket parsing.

No I/O, no Tornado, no Redis: everything here is tested without an event loop.
"""
