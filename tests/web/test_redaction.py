"""No token reaches a log, however its parameter's name is spelled, even when a handler fails."""

from __future__ import annotations

import logging

import pytest
from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import Node, channel_routes
from tornado_channels.web import tokens
from tornado_channels.web._tornado import names_token, redact
from tornado_channels.web.errors import JSONErrorsMixin

from ..helpers import NodeAppTestCase

SECRET = "SECRET-e5b1"
#: The spellings of a token parameter: each is read as ``token`` (or may be, by a host).
QUERIES = [
    f"?token={SECRET}",
    f"?xtoken=1&%74oken={SECRET}",
    f"?a=1&to%6Ben={SECRET}",
    f"?%2574oken={SECRET}",
    f"?TOKEN={SECRET}",
    f"?tok%65n={SECRET}#{SECRET}",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/a?token=abc", "/a?token=[redacted]"),
        ("/a?xtoken=1&%74oken=abc", "/a?xtoken=1&%74oken=[redacted]"),
        ("/a?to%6Ben=abc&b=2", "/a?to%6Ben=[redacted]&b=2"),
        ("/a?%2574oken=abc", "/a?%2574oken=[redacted]"),
        ("/a?Token=abc", "/a?Token=[redacted]"),
        # Tornado keeps "#" and ";" inside a value: hidden with the rest of it.
        ("/a?token=ab#cd;ef", "/a?token=[redacted]"),
        ("GET /a?token=abc (127.0.0.1)", "GET /a?token=[redacted] (127.0.0.1)"),
        ("/a?token=", "/a?token=[redacted]"),
        # Other names, and a path, are kept as they are.
        ("/a?xtoken=abc&tokens=d&to+ken=e", "/a?xtoken=abc&tokens=d&to+ken=e"),
        ("/token=abc/b", "/token=abc/b"),
        ("/a", "/a"),
    ],
)
def test_redact_hides_every_value_whose_name_reads_token(text: str, expected: str) -> None:
    """A parameter whose name decodes (once or more, any case) to ``token`` has its value hidden."""
    assert redact(text) == expected
    assert tokens.redact(text) == expected


def test_names_token_reads_names_as_the_query_parser_does() -> None:
    """Escapes, double escapes and case all read as ``token``; a "+" is a space, as in parse_qs."""
    assert all(names_token(name) for name in ("token", "%74oken", "%2574%256Fken", "TOKEN"))
    assert not any(names_token(name) for name in ("tok+en", "xtoken", "token%00", "%"))


class Boom(JSONErrorsMixin):
    """A handler that fails: its uncaught exception is logged, with the request named."""

    def get(self) -> None:
        raise RuntimeError("the handler failed")


class LoggedRequestsTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return Application([(r"/boom", Boom), *channel_routes(node)])

    @gen_test
    async def test_no_log_record_holds_a_token(self) -> None:
        """Pages, publishes, refusals and a failing handler log each spelling of token hidden."""
        auth = {"Authorization": f"Bearer {SECRET}"}
        with self.assertLogs(level=logging.DEBUG) as logs:
            for query in QUERIES:
                page = await self.http_client.fetch(self.get_url(f"/users/1{query}"))
                self.assertEqual(page.code, 200)
                published = await self.post(f"/users/1{query}", b"m", headers=auth)
                self.assertEqual(published.code, 202)
                refused = await self.http_client.fetch(
                    self.get_url(f"/a%2Fb{query}"), raise_error=False
                )
                self.assertEqual(refused.code, 400)
                failed = await self.http_client.fetch(
                    self.get_url(f"/boom{query}"), headers=auth, raise_error=False
                )
                self.assertEqual(failed.code, 500)
        text = "\n".join(logs.output)
        self.assertIn("Uncaught exception GET /boom?", text)
        self.assertIn("RuntimeError: the handler failed", text)  # the traceback is kept
        self.assertIn("[redacted]", text)
        self.assertNotIn(SECRET, text)
        self.assertNotIn("HTTPServerRequest(", text)
