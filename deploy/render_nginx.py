#!/usr/bin/env python3
"""Render deploy/nginx.conf.template for the chosen ports: ``render_nginx.py > nginx.conf``.

Settings come from the environment, as deploy/up.sh exports them:
TC_RUN_DIR, TC_PORT, TC_ADDRESS, TC_WORKERS, TC_BASE_PORT, TC_READ_TIMEOUT,
TC_OPS_ALLOW (addresses or networks that may reach the operational routes
under /_/; anyone when unset), and the workers' own
TORNADO_CHANNELS_MAX_MESSAGE_SIZE and _MAX_BATCH_BYTES, whose defaults are
read from tornado_channels itself (run it with the project's Python), so
nginx and the workers always refuse the same bodies.

Every refusal nginx makes itself is a JSON body like the workers'
(:data:`NGINX_ERRORS`): the template's ``@ERROR_PAGES@`` (and its variants)
become ``error_page`` lines, ``@ERROR_LOCATIONS@`` the locations that answer them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from pathlib import Path

from tornado_channels.web.config import ChannelConfig

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
DEFAULTS = ChannelConfig()

#: Each status nginx itself may answer: (status sent, error code, message), with
#: the workers' codes where they refuse alike (core/http1.py, server/wire.py).
#: Only nginx's own answers are replaced: proxy_intercept_errors stays off, so
#: a worker's 400, 404, 413 or 503 passes through as the worker wrote it.
NGINX_ERRORS: dict[int, tuple[int, str, str]] = {
    400: (400, "bad_request", "nginx could not read the request"),
    403: (403, "forbidden", "this address may not reach this path"),
    404: (404, "not_found", "nothing is served at this path"),
    405: (405, "method_not_allowed", "nginx does not accept this method"),
    408: (408, "request_timeout", "the request did not arrive in time"),
    411: (411, "length_required", "the request needs a Content-Length"),
    413: (
        413,
        "message_too_large",
        "the body exceeds the maximum message size of {max_body} bytes",
    ),
    414: (414, "uri_too_long", "the request line is too long"),
    # nginx's own code for a header line (or all of them) past its buffers,
    # sent as 400 by default; 431 is what the workers answer for a large head.
    494: (431, "request_header_too_large", "a request header field is too large"),
    # With TLS on nginx: a bad or missing client certificate, plain HTTP to the TLS port.
    495: (400, "bad_certificate", "the client certificate is not valid"),
    496: (400, "certificate_required", "the client certificate is missing"),
    497: (400, "plain_http_to_https", "plain HTTP was sent to the HTTPS port"),
    500: (500, "internal_error", "nginx failed to serve the request"),
    501: (501, "not_implemented", "only the chunked transfer coding is supported"),
    # No worker answered (refused, died mid-request, timed out): one answer for all.
    502: (503, "no_worker_available", "no tornado_channels worker answered"),
    503: (503, "no_worker_available", "no tornado_channels worker answered"),
    504: (503, "no_worker_available", "no tornado_channels worker answered"),
    505: (505, "http_version_not_supported", "nginx does not speak this HTTP version"),
}
#: A batch's 413, in /_/publish: its limit is the batch's, not one message's.
BATCH_TOO_LARGE = (413, "batch_too_large", "the body exceeds the limit of {max_batch_body} bytes")


#: Where nginx's refusals are answered: internal locations, one per error code,
#: under /_/ (the server's own namespace, so no channel is shadowed).
ERROR_PREFIX = "/_/nginx/"


def error_pages(indent: str, batch: bool = False) -> str:
    """The ``error_page`` lines sending each of nginx's own refusals to its JSON location."""
    lines = []
    for status, (answered, error, _) in NGINX_ERRORS.items():
        if batch and status == 413:
            error = BATCH_TOO_LARGE[1]
        # To a URI, not a named location: nginx cannot enter a named location
        # from a request whose line it could not read (400, 414): that is a 500.
        lines.append(f"{indent}error_page {status} ={answered} {ERROR_PREFIX}{error};")
    return "\n".join(lines)


def error_locations(max_body: str, max_batch_body: str) -> str:
    """The internal locations that answer nginx's refusals, each with its JSON body."""
    answers = {error: (status, message) for status, error, message in NGINX_ERRORS.values()}
    answers[BATCH_TOO_LARGE[1]] = (BATCH_TOO_LARGE[0], BATCH_TOO_LARGE[2])
    blocks = []
    for error, (status, message) in answers.items():
        text = message.format(max_body=max_body, max_batch_body=max_batch_body)
        body = json.dumps({"error": error, "message": text})
        # Written inside '...' in nginx's syntax, where these would need escapes.
        if any(char in body for char in "'\\$"):
            raise ValueError(f"not a plain nginx string: {body}")
        retry = "            add_header Retry-After 1 always;\n" if status == 503 else ""
        blocks.append(
            f"        location = {ERROR_PREFIX}{error} {{\n"
            "            internal;\n"
            "            default_type application/json;\n"
            f"{retry}"
            f"            return {status} '{body}\\n';\n"
            "        }"
        )
    return "\n\n".join(blocks)


def ops_access(allowed: str, indent: str) -> str:
    """``allow`` lines for each address or network in ``allowed``, then ``deny all``; or none."""
    entries = allowed.replace(",", " ").split()
    if not entries:
        return f"{indent}# TC_OPS_ALLOW is unset: anyone may reach them."
    lines = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SystemExit(f"TC_OPS_ALLOW: {entry!r} is not an address or network") from None
        lines.append(f"{indent}allow {network};")
    return "\n".join([*lines, f"{indent}deny all;"])


def render(env: dict[str, str]) -> str:
    """The nginx configuration for the settings in ``env``."""
    run_dir = Path(env["TC_RUN_DIR"]).resolve()
    workers = int(env.get("TC_WORKERS", "1"))
    base_port = int(env["TC_BASE_PORT"])
    upstream = "\n".join(
        # max_fails=0: never mark a local worker down. A stopped one refuses at
        # once and nginx moves to the next, and a restarted one gets traffic
        # the moment it listens again, instead of after a fail_timeout.
        f"        server 127.0.0.1:{base_port + number} max_fails=0;"
        for number in range(workers)
    )
    max_body = env.get("TORNADO_CHANNELS_MAX_MESSAGE_SIZE", str(DEFAULTS.max_message_size))
    max_batch_body = env.get("TORNADO_CHANNELS_MAX_BATCH_BYTES", str(DEFAULTS.max_batch_bytes))
    values = {
        "ERROR_PAGES": error_pages(" " * 8),
        "LOCATION_ERROR_PAGES": error_pages(" " * 12),
        "BATCH_ERROR_PAGES": error_pages(" " * 12, batch=True),
        "ERROR_LOCATIONS": error_locations(max_body, max_batch_body),
        "OPS_ACCESS": ops_access(env.get("TC_OPS_ALLOW", ""), " " * 12),
        "RUN_DIR": str(run_dir),
        "PORT": env.get("TC_PORT", "5000"),
        "ADDRESS": env.get("TC_ADDRESS", "127.0.0.1"),
        "UPSTREAM_SERVERS": upstream,
        "MAX_BODY": max_body,
        "MAX_BATCH_BODY": max_batch_body,
        "READ_TIMEOUT": env.get("TC_READ_TIMEOUT", "60s"),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        path = run_dir / "nginx-tmp" / sub
        path.mkdir(parents=True, exist_ok=True)
        # nginx's workers drop root privileges; let them use these directories.
        path.chmod(0o1777)
    return text


if __name__ == "__main__":
    sys.stdout.write(render(dict(os.environ)))
