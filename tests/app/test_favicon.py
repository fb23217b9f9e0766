"""The tab's icon: browsers ask /favicon.ico whatever the page links; both addresses answer."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/favicon.ico", "/favicon.svg"])
async def test_the_icon_is_served(client, path):
    answer = await client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("image/svg+xml")
    assert answer.text.startswith("<svg")
