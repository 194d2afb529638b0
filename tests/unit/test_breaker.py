import pytest

from embedq.listener.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# events: "ok" / "fail" publishes, "+N" advances the clock; expected: (allows, state) after each
@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (["ok", "ok"], [(True, "closed"), (True, "closed")]),
        (["fail", "fail"], [(True, "closed"), (True, "closed")]),
        (["fail", "fail", "fail"], [(True, "closed"), (True, "closed"), (False, "open")]),
        (["fail", "ok", "fail", "fail"], [(True, "closed")] * 4),
        (["fail", "fail", "fail", "+29"], [(True, "closed"), (True, "closed"), (False, "open"), (False, "open")]),
        (["fail", "fail", "fail", "+30"], [(True, "closed"), (True, "closed"), (False, "open"), (True, "half_open")]),
        (
            ["fail", "fail", "fail", "+30", "fail"],
            [(True, "closed"), (True, "closed"), (False, "open"), (True, "half_open"), (False, "open")],
        ),
        (
            ["fail", "fail", "fail", "+30", "ok"],
            [(True, "closed"), (True, "closed"), (False, "open"), (True, "half_open"), (True, "closed")],
        ),
        (
            ["fail", "fail", "fail", "+30", "fail", "+10", "+20"],
            [
                (True, "closed"),
                (True, "closed"),
                (False, "open"),
                (True, "half_open"),
                (False, "open"),
                (False, "open"),
                (True, "half_open"),
            ],
        ),
    ],
)
def test_breaker_transitions(events, expected):
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, cool_down=30, clock=clock)
    seen = []
    for event in events:
        if event.startswith("+"):
            clock.now += float(event[1:])
        elif event == "ok":
            breaker.record_success()
        else:
            breaker.record_failure()
        allows = breaker.allows_publish()
        seen.append((allows, breaker.state.value))
    assert seen == expected
    assert all(isinstance(s, str) for s in BreakerState)
