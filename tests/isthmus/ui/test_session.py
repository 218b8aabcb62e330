import pytest

from isthmus.ui.session import SessionCodec


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_cookie_opens_its_session_until_it_expires() -> None:
    clock = Clock()
    codec = SessionCodec("admin", ttl=60, clock=clock)
    session, cookie = codec.issue()
    assert codec.open(cookie) == session
    clock.now += 59
    assert codec.open(cookie) == session
    clock.now += 1
    assert codec.open(cookie) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda cookie: cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"),
        lambda cookie: "e30" + cookie[3:],
        lambda cookie: cookie.replace(".", ""),
        lambda cookie: "",
        lambda cookie: "%%%.%%%",
    ],
)
def test_a_tampered_or_malformed_cookie_opens_nothing(tamper) -> None:  # type: ignore[no-untyped-def]
    codec = SessionCodec("admin", ttl=60, clock=Clock())
    _, cookie = codec.issue()
    assert codec.open(tamper(cookie)) is None


def test_another_admin_key_does_not_accept_the_cookie() -> None:
    clock = Clock()
    _, cookie = SessionCodec("admin", ttl=60, clock=clock).issue()
    assert SessionCodec("rotated-admin", ttl=60, clock=clock).open(cookie) is None


def test_the_csrf_token_belongs_to_its_session_only() -> None:
    codec = SessionCodec("admin", ttl=60, clock=Clock())
    mine, _ = codec.issue()
    other, _ = codec.issue()
    token = codec.csrf_token(mine)
    assert codec.csrf_ok(mine, token)
    assert not codec.csrf_ok(other, token)
    assert not codec.csrf_ok(mine, None)
    assert not codec.csrf_ok(mine, "")


def test_an_empty_admin_key_cannot_sign_sessions() -> None:
    with pytest.raises(ValueError):
        SessionCodec("", ttl=60)
