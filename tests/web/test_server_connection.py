"""The seam between the web layer and the HTTP stack a request came on."""

from __future__ import annotations

import logging

import pytest
from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.testing import gen_test

from tornado_channels.web.server_connection import connection_of

from ..helpers import NodeAppTestCase


def test_a_request_on_an_unknown_kind_of_connection_is_refused_by_name() -> None:
    """connection_of names the connection type it cannot serve instead of guessing."""
    request = httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine("GET", "/a", "HTTP/1.1"),
        headers=httputil.HTTPHeaders({"Host": "x"}),
        connection=httputil.HTTPConnection(),
    )
    with pytest.raises(TypeError, match="HTTPConnection"):
        connection_of(request)


class MountedConnectionTest(NodeAppTestCase):
    """A host application's own HTTPServer, adapted by TornadoServerConnection."""

    def get_http_server(self) -> HTTPServer:
        return HTTPServer(self._app, xheaders=True)

    @gen_test
    async def test_a_mounted_publish_is_logged_with_the_client_address_tornado_read(self) -> None:
        """The access line of a POST names the client from X-Real-IP, as Tornado's request did."""
        with self.assertLogs("tornado.access", logging.INFO) as logs:
            response = await self.post("/users/1", b"hi", headers={"X-Real-IP": "203.0.113.9"})
        assert response.code == 202, response.body
        assert any("203.0.113.9" in line for line in logs.output), logs.output
