"""Fixtures shared by the integration tests; the helpers behind them live in harness.py."""
import pytest

import harness


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server (no persistence) on a free loopback port, stopped afterwards."""
    server = harness.RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def mock_factory(tmp_path):
    """start(*args, token=...) -> a running harness.Mock. Every mock must exit 0 on SIGTERM."""
    mocks = []

    def start(*args, **kwargs):
        mock = harness.Mock(tmp_path, *args, **kwargs)
        mocks.append(mock)
        return mock

    yield start
    for mock in mocks:
        code = mock.stop()
        assert code == 0, f"databrain-mock exited {code}: {mock.stderr_text()[-4000:]}"


@pytest.fixture
def mock(mock_factory):
    """A databrain-mock with one token (mock.token) and no faults."""
    return mock_factory()
