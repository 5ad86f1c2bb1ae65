"""Waiting for something that happens on its own (a container ending, a file appearing):
poll until the predicate holds or the time is up.

    assert wait_for(lambda: not running(), timeout=30)
"""

import time


def wait_for(predicate, timeout=30.0, step=0.1):
    """The predicate's first true value within `timeout` seconds, else its value then."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()
