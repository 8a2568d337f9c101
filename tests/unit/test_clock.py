"""The processing clock in event and live modes, with a controllable wall clock."""

from streams.clock import Clock


class Wall:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_event_mode_is_event_time_only_and_monotonic() -> None:
    wall = Wall(1000.0)
    clock = Clock("event", wall=wall)
    assert clock.observe(50.0) == 50.0
    wall.t = 5000.0
    assert clock.now() == 50.0
    assert clock.observe(40.0) == 50.0  # never backwards


def test_live_mode_adds_wall_progress_to_event_time() -> None:
    wall = Wall(1000.0)
    clock = Clock("live", wall=wall)
    assert clock.now() == 1000.0  # no event yet: wall time
    clock.observe(2000.0)  # events ahead of the wall clock
    wall.t = 1010.0
    assert clock.now() == 2010.0
    clock = Clock("live", wall=Wall(1000.0))
    clock.observe(10.0)  # historical events: wall time is the floor
    assert clock.now() == 1000.0
