"""The live stack the tests run against (scripts/test-python-client.sh starts it): the API,
the fault proxy in front of DynamoDB Local, and the local token minter."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from tidewater_client import AsyncClient, Client


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run the tests through scripts/test-python-client.sh")
    return value


@pytest.fixture(scope="session")
def api() -> str:
    return _env("TIDEWATER_API")


@pytest.fixture(scope="session")
def mint() -> Callable[..., str]:
    """A local bearer token for a customer id (and roles), from the project's own minter."""
    binary = _env("TIDEWATER_TOKEN_BIN")

    def mint(sub: str, groups: str = "") -> str:
        return subprocess.run([binary, sub, groups], check=True, capture_output=True, text=True).stdout.strip()

    return mint


@pytest.fixture
def customer() -> str:
    return f"py-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def client(api: str, mint: Callable[..., str], customer: str) -> Iterator[Client]:
    with Client(api, token=mint(customer)) as client:
        yield client


@pytest.fixture
async def async_client(api: str, mint: Callable[..., str], customer: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(api, token=mint(customer)) as client:
        yield client


class FaultProxy:
    def __init__(self, url: str) -> None:
        self.url = url

    def switch(self, on: bool) -> None:
        httpx.post(f"{self.url}/_fault-proxy/{'on' if on else 'off'}").raise_for_status()


@pytest.fixture
def faults() -> Iterator[FaultProxy]:
    """The proxy between the functions and DynamoDB Local; its faults are off again afterwards."""
    proxy = FaultProxy(_env("TIDEWATER_FAULT_PROXY"))
    try:
        yield proxy
    finally:
        proxy.switch(False)
