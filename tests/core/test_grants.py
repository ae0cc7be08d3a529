"""Token grants: channel names and subtrees, matched by whole segments (pure)."""

from __future__ import annotations

import pytest

from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.core.grants import Grants, InvalidGrant


@pytest.mark.parametrize(
    ("grants", "target", "allowed"),
    [
        (["users/42"], Channel("users/42"), True),
        (["users/42"], Channel("users/42/inbox"), False),
        (["users/4"], Channel("users/42"), False),
        (["users/4/"], Channel("users/42"), False),
        (["users/42/"], Channel("users/42"), False),  # a subtree grant is not its node
        (["users/42/"], Channel("users/42/inbox"), True),
        (["users/42/"], Channel("users/42/a/b"), True),
        (["users/"], Subtree("users"), True),  # POST /users/
        (["users/"], Subtree("users/2"), True),  # POST /users/2/
        (["users/"], Subtree(""), False),  # POST / reaches more than users/
        (["users/2"], Subtree("users/2"), False),
        (["/"], Channel("anything/at/all"), True),
        (["/"], Subtree(""), True),
        (["news/", "/users/42"], Channel("users/42"), True),
        (["caf%C3%A9/"], Channel("café/1"), True),  # compared after the URL's decoding
        (["café"], Channel("café"), True),
        ([], Channel("a"), False),
    ],
)
def test_grants_match_by_whole_segments(grants: list[str], target: object, allowed: bool) -> None:
    """A channel grant is that channel only; a subtree grant is strictly below it."""
    assert Grants.parse(grants).allows(target) is allowed  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["users//1", "a/../b", "_/health", "x\x00", "a" * 300])
def test_a_grant_that_is_not_a_channel_is_refused(bad: str) -> None:
    """Grants follow the channel naming rules, reserved namespace included."""
    with pytest.raises(InvalidGrant):
        Grants.parse([bad])
