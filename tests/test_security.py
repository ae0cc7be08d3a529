"""Who may publish: the publish key, cross-site requests, read-only channels."""

from __future__ import annotations

import json

from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import Node, make_app

from .cases import NodeAppTestCase
from .support import receive, silent

KEY = "s3cret-key"


class PublishKeyTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, publish_key=KEY)

    async def post(self, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        return await self.http_client.fetch(
            self.get_url("/news"), method="POST", body=b"x", headers=headers, raise_error=False
        )

    @gen_test
    async def test_post_without_the_key_is_401(self) -> None:
        """A POST without a key is refused with 401, a JSON reason and a Bearer challenge."""
        ws = await self.ws("/news")
        response = await self.post({})
        self.assertEqual(response.code, 401)
        self.assertEqual(json.loads(response.body)["error"], "unauthorized")
        self.assertIn("Bearer", response.headers["WWW-Authenticate"])
        await silent(ws)

    @gen_test
    async def test_post_with_a_wrong_key_is_403(self) -> None:
        """A POST with the wrong key is refused with 403 and nothing is published."""
        ws = await self.ws("/news")
        for header in (f"Bearer {KEY}x", "Bearer s3cret", f"Basic {KEY}", "Bearer"):
            with self.subTest(header=header):
                response = await self.post({"Authorization": header})
                self.assertIn(response.code, (401, 403))
                self.assertIn(json.loads(response.body)["error"], ("unauthorized", "forbidden"))
        await silent(ws)

    @gen_test
    async def test_post_with_the_key_publishes(self) -> None:
        """A POST carrying 'Authorization: Bearer <key>' publishes as usual."""
        ws = await self.ws("/news")
        response = await self.post({"Authorization": f"Bearer {KEY}"})
        self.assertEqual(response.code, 202)
        self.assertEqual(await receive(ws), "x")


class CrossSiteTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, trusted_origins=("https://app.example",))

    async def post(self, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        return await self.http_client.fetch(
            self.get_url("/news"), method="POST", body=b"x", headers=headers, raise_error=False
        )

    @gen_test
    async def test_cross_site_post_is_refused(self) -> None:
        """A browser POST from another site is refused with 403 JSON and not published."""
        ws = await self.ws("/news")
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        ):
            with self.subTest(headers=headers):
                response = await self.post(headers)
                self.assertEqual(response.code, 403)
                self.assertEqual(json.loads(response.body)["error"], "forbidden")
        await silent(ws)

    @gen_test
    async def test_same_site_trusted_and_non_browser_posts_pass(self) -> None:
        """Same-origin, trusted-origin and non-browser (no Origin) POSTs publish."""
        ws = await self.ws("/news")
        host = f"127.0.0.1:{self.get_http_port()}"
        for headers in (
            {},
            {"Origin": f"http://{host}"},
            {"Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"},
            {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"},
        ):
            with self.subTest(headers=headers):
                self.assertEqual((await self.post(headers)).code, 202)
                self.assertEqual(await receive(ws), "x")
