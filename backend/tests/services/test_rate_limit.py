from __future__ import annotations

from app.services.rate_limit import SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_blocks_at_limit_and_reports_wait() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(3, 60, clock=clock)
    for step in range(3):
        assert limiter.retry_after("k") == 0
        limiter.hit("k")
        clock.now += 10 if step < 2 else 0
    # Events at 100, 110, 120: the first leaves the window at 160.
    assert limiter.retry_after("k") == 41
    clock.now = 160.5
    assert limiter.retry_after("k") == 0


def test_keys_are_independent_and_any_blocked_key_blocks() -> None:
    limiter = SlidingWindowLimiter(2, 60, clock=Clock())
    limiter.hit("a")
    limiter.hit("a")
    assert limiter.retry_after("b") == 0
    assert limiter.retry_after("b", "a") > 0
    limiter.reset("a")
    assert limiter.retry_after("a") == 0


def test_memory_is_bounded() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(2, 10, clock=clock)
    for _ in range(50):
        limiter.hit("same")
    assert len(limiter._events["same"]) == 2
    limiter.MAX_KEYS = 100
    for index in range(100):
        limiter.hit(f"key{index}")
    clock.now += 11
    limiter.hit("late")
    assert list(limiter._events) == ["late"]
