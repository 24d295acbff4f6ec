"""The live view's event stream over a real server: one event per committed write, replay on
reconnect, resets, limits and shutdown. Plus the window read (/samples) it starts from."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import AddUser, basic
from tests.tracker_process import TrackerProcess
from tests.sse import open_stream, sign_in
from tracker.accounts import Accounts
from tracker.app import create_app
from tracker.config import Settings
from tracker.live import LiveHub, TooManyStreams, Viewer

RIDER = basic("rider", "pw-rider")
EVENTS = "/api/watch/rider/events"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", live_recheck_seconds=0.2)


@pytest.fixture
async def rider(add_user: AddUser, accounts: Accounts) -> None:
    await add_user("rider", "pw-rider")
    await accounts.set_public("rider", True)  # anyone may watch: these tests are about the stream


async def write(client: TestClient, body: str) -> None:
    response = await client.post("/write?db=rider&precision=s", data=body, headers=RIDER)
    assert response.status == 204, await response.text()


def hub(client: TestClient) -> LiveHub:
    from tracker.appkeys import LIVE

    return client.app[LIVE]  # type: ignore[index]


@pytest.mark.usefixtures("rider")
async def test_a_write_becomes_one_event_with_its_samples(client: TestClient) -> None:
    stream = await open_stream(client, EVENTS)
    opening = await stream.block()
    boot = hub(client).boot
    assert opening.id == f"{boot}-0" and opening.retry == "2000" and opening.event is None
    await write(client, "samples hr_bpm=150,lat=48.1,lon=11.5 1700000001\nsamples hr_bpm=151i 1700000000")
    event = await stream.event(timeout=1.0)
    assert event.event == "samples"
    assert event.id == f"{boot}-1"
    # Time order within the event, canonical field names, floats, no tags.
    assert event.json == {
        "samples": [
            {"t": 1700000000 * 10**9, "f": {"hr_bpm": 151.0}},
            {"t": 1700000001 * 10**9, "f": {"hr_bpm": 150.0, "lat": 48.1, "lng": 11.5}},
        ]
    }


@pytest.mark.usefixtures("rider")
async def test_two_writes_two_events_with_increasing_ids_in_arrival_order(client: TestClient) -> None:
    stream = await open_stream(client, EVENTS)
    await write(client, "samples hr_bpm=1 1700000100")
    # Older than the first: a phone flushing its backlog. Delivered as it arrives; the page sorts.
    await write(client, "samples hr_bpm=2 1700000050")
    first, second = await stream.event(), await stream.event()
    boot = hub(client).boot
    assert (first.id, second.id) == (f"{boot}-1", f"{boot}-2")
    assert first.json["samples"] == [{"t": 1700000100 * 10**9, "f": {"hr_bpm": 1.0}}]
    assert second.json["samples"] == [{"t": 1700000050 * 10**9, "f": {"hr_bpm": 2.0}}]


@pytest.mark.usefixtures("rider")
async def test_a_refused_write_publishes_nothing(client: TestClient) -> None:
    stream = await open_stream(client, EVENTS)
    response = await client.post("/write?db=rider", data="samples nope=1 1", headers=RIDER)
    assert response.status == 400
    await write(client, "samples hr_bpm=3 1700000000")
    event = await stream.event()
    assert event.id == f"{hub(client).boot}-1"  # the refused write took no number
    assert event.json["samples"][0]["f"] == {"hr_bpm": 3.0}


@pytest.mark.usefixtures("rider")
async def test_reconnect_with_last_event_id_replays_exactly_the_missed_events(client: TestClient) -> None:
    stream = await open_stream(client, EVENTS)
    await write(client, "samples hr_bpm=1 1700000001")
    seen = await stream.event()
    stream.response.close()

    await write(client, "samples hr_bpm=2 1700000002")
    await write(client, "samples hr_bpm=3 1700000003")
    again = await open_stream(client, EVENTS, headers={"Last-Event-ID": seen.id or ""})
    replayed = [await again.event(), await again.event()]
    boot = hub(client).boot
    assert [e.id for e in replayed] == [f"{boot}-2", f"{boot}-3"]
    assert [e.json["samples"][0]["f"]["hr_bpm"] for e in replayed] == [2.0, 3.0]
    # Nothing more was replayed: the next event is the next write, not a duplicate.
    await write(client, "samples hr_bpm=4 1700000004")
    following = await again.event()
    assert following.id == f"{boot}-4" and following.json["samples"][0]["f"]["hr_bpm"] == 4.0


@pytest.mark.usefixtures("rider")
async def test_last_event_id_from_the_window_read_resumes_without_a_gap(client: TestClient) -> None:
    await write(client, "samples hr_bpm=1 1700000001")
    window = await (await client.get("/api/watch/rider/samples?from=0&to=1800000000000000000")).json()
    assert window["last_event_id"] == f"{hub(client).boot}-1"
    assert [s["f"]["hr_bpm"] for s in window["samples"]] == [1.0]
    await write(client, "samples hr_bpm=2 1700000002")  # between the read and the stream: must not be lost
    stream = await open_stream(client, f"{EVENTS}?last_event_id={window['last_event_id']}")
    event = await stream.event()
    assert event.id == f"{hub(client).boot}-2" and event.json["samples"][0]["f"]["hr_bpm"] == 2.0


@pytest.mark.usefixtures("rider")
async def test_unknown_boot_gets_a_reset_with_the_current_position(client: TestClient) -> None:
    await write(client, "samples hr_bpm=1 1700000001")
    stream = await open_stream(client, EVENTS, headers={"Last-Event-ID": "0badb00t-1"})
    reset = await stream.event()
    assert reset.event == "reset" and reset.json == {}
    assert reset.id == f"{hub(client).boot}-1"
    await write(client, "samples hr_bpm=2 1700000002")
    assert (await stream.event()).id == f"{hub(client).boot}-2"


@pytest.mark.usefixtures("rider")
async def test_an_id_from_the_future_or_garbage_gets_a_reset(client: TestClient) -> None:
    boot = hub(client).boot
    for last in (f"{boot}-99", "garbage", f"{boot}-x"):
        stream = await open_stream(client, EVENTS, headers={"Last-Event-ID": last})
        assert (await stream.event()).event == "reset", last
        stream.response.close()


async def test_too_old_seq_gets_a_reset(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser, accounts: Accounts
) -> None:
    settings = Settings(data_dir=tmp_path / "data", live_buffer_samples=2)
    client = await aiohttp_client(create_app(settings))
    await add_user("rider", "pw-rider")
    await accounts.set_public("rider", True)
    for i in range(4):
        await write(client, f"samples hr_bpm={i} 170000000{i}")
    boot = hub(client).boot
    # Resuming after 1 works, from the journal, which still keeps every entry.
    ok = await open_stream(client, EVENTS, headers={"Last-Event-ID": f"{boot}-1"})
    assert [(await ok.event()).id for _ in range(3)] == [f"{boot}-2", f"{boot}-3", f"{boot}-4"]
    # Entries the journal no longer keeps cannot be replayed: a reset at the current position.
    with sqlite3.connect(settings.data_dir / "journal.sqlite") as journal:
        journal.execute("DELETE FROM entries WHERE id <= 2")
    journal.close()
    gone = await open_stream(client, EVENTS, headers={"Last-Event-ID": f"{boot}-1"})
    reset = await gone.event()
    assert reset.event == "reset" and reset.id == f"{boot}-4"


def test_the_replay_buffer_is_bounded_by_samples_not_events() -> None:
    """An uploaded batch must not pin its points for the buffer's whole age (it did: 3 MB per 5,000 lines)."""
    live = LiveHub(buffer_samples=8)

    class P:
        def __init__(self, t: int) -> None:
            self.time, self.fields = t, {"hr_bpm": float(t)}

    live.publish("rider", [P(t) for t in range(5)])  # event 1: 5 samples
    live.publish("rider", [P(t) for t in range(5, 8)])  # event 2: 3 samples, 8 in all
    channel = live._channels["rider"]
    assert [e.id for e in channel.events] == [1, 2] and channel.samples == 8
    live.publish("rider", [P(8)])  # 9 > 8: event 1 goes
    assert [e.id for e in channel.events] == [2, 3] and channel.samples == 4
    live.publish("rider", [P(t) for t in range(9, 30)])  # a batch bigger than the whole buffer: nothing kept
    assert not channel.events and channel.samples == 0
    subscription, _ = live.subscribe("rider", f"{live.boot}-3")  # its points are gone: start afresh
    assert [e.name for e in subscription._queue] == ["reset"]


async def test_a_slow_subscriber_gets_a_reset_instead_of_unbounded_memory() -> None:
    live = LiveHub(queue_events=3)

    class P:
        def __init__(self, t: int) -> None:
            self.time, self.fields = t, {"hr_bpm": float(t)}

    subscription, _ = live.subscribe("rider")
    for t in range(1, 4):
        live.publish("rider", [P(t)])
    assert subscription.queued == 3
    live.publish("rider", [P(4)])  # one too many: the queue is dropped for a reset
    assert subscription.queued == 1
    events = await subscription.next_events(timeout=1.0)
    assert [(e.name, e.id) for e in events] == [("reset", f"{live.boot}-4")]
    live.publish("rider", [P(5)])  # and it carries on from there
    assert [(e.name, e.id) for e in await subscription.next_events(timeout=1.0)] == [("samples", f"{live.boot}-5")]
    subscription.close()
    assert live.open_streams == 0


async def test_stream_limits_answer_429_with_a_clear_error(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, add_user: AddUser, accounts: Accounts
) -> None:
    settings = Settings(data_dir=tmp_path / "data", live_max_streams_per_user=1, live_max_streams=2, live_reserved_streams=0)
    client = await aiohttp_client(create_app(settings))
    for name in ("rider", "other", "third"):
        await add_user(name, "pw-" + name)
        await accounts.set_public(name, True)
    first = await open_stream(client, EVENTS)
    refused = await client.get(EVENTS)
    assert refused.status == 429
    assert refused.headers["Content-Type"].startswith("application/json")
    assert await refused.json() == {"error": "too many live viewers of rider (limit 1); try again later"}
    await open_stream(client, "/api/watch/other/events")
    total = await client.get("/api/watch/third/events")
    assert total.status == 429
    assert "too many live streams on this server (limit 2)" in (await total.json())["error"]
    # A closed stream frees its place.
    first.response.close()
    async with asyncio.timeout(2):
        while hub(client).open_streams > 1:
            await write(client, "samples hr_bpm=1 1700000000")  # the server notices on its next write
    await open_stream(client, EVENTS)


@pytest.mark.usefixtures("rider")
async def test_heartbeat_is_a_ping_comment(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings.with_(live_heartbeat_seconds=0.05)))
    stream = await open_stream(client, EVENTS)
    await stream.block()  # the opening id/retry
    ping = await stream.block(timeout=1.0)
    assert ping.comments == ["ping"] and ping.event is None


@pytest.mark.usefixtures("rider")
async def test_shutdown_ends_open_streams(aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    stream = await open_stream(client, EVENTS)
    await stream.block()
    async with asyncio.timeout(5):  # far below aiohttp's 60 s wait for running handlers
        closing = asyncio.create_task(client.server.close())
        await stream.end()
        await closing
    assert hub(client).open_streams == 0


# ----- the window read behind the page -----


@pytest.mark.usefixtures("rider")
async def test_window_returns_samples_in_time_order_within_from_to(client: TestClient) -> None:
    await write(client, "samples hr_bpm=3 1700000003\nsamples hr_bpm=1,lat=1,lng=2 1700000001\nsamples hr_bpm=9 1700000009")
    url = "/api/watch/rider/samples?from=1700000001000000000&to=1700000009000000000"
    body = await (await client.get(url)).json()
    assert body["from"] == 1700000001000000000 and body["to"] == 1700000009000000000
    assert body["downsampled"] is False
    assert body["samples"] == [
        {"t": 1700000001000000000, "f": {"hr_bpm": 1.0, "lat": 1.0, "lng": 2.0}},
        {"t": 1700000003000000000, "f": {"hr_bpm": 3.0}},
    ]  # `to` is exclusive


@pytest.mark.usefixtures("rider")
async def test_window_downsamples_to_max_points_with_means_and_the_last_fix(client: TestClient) -> None:
    base = 1700000000
    lines = [f"samples hr_bpm={100 + i},lat={10 + i},lng={20 + i} {base + i}" for i in range(8)]
    lines.append(f"samples hr_bpm=200 {base + 7}")  # a later value for the same time wins (merge)
    lines[5] = f"samples hr_bpm=105 {base + 5}"  # a bucket whose last sample has no fix
    await write(client, "\n".join(lines))
    url = f"/api/watch/rider/samples?from={base * 10**9}&to={(base + 8) * 10**9}&max_points=2"
    body = await (await client.get(url)).json()
    assert body["downsampled"] is True
    ns = 10**9
    assert body["samples"] == [
        # bucket 0: seconds 0..3; mean heart rate, the fix of its last sample
        {"t": (base + 3) * ns, "f": {"hr_bpm": 101.5, "lat": 13.0, "lng": 23.0}},
        # bucket 1: seconds 4..7 (hr 104, 105, 106, 200); second 7 is its last fix
        {"t": (base + 7) * ns, "f": {"hr_bpm": (104 + 105 + 106 + 200) / 4, "lat": 17.0, "lng": 27.0}},
    ]
    body = await (await client.get(url.replace("max_points=2", "max_points=8"))).json()
    assert body["downsampled"] is False and len(body["samples"]) == 8


@pytest.mark.usefixtures("rider")
async def test_window_parameters_are_checked(client: TestClient) -> None:
    for query, message in [
        ("from=x", "from must be an integer, got 'x'"),
        ("from=5&to=5", "from must be before to"),
        ("max_points=0", "max_points must be 1..20000"),
    ]:
        response = await client.get(f"/api/watch/rider/samples?{query}")
        assert response.status == 400
        assert await response.json() == {"error": message}
    empty = await (await client.get("/api/watch/rider/samples")).json()
    assert empty["samples"] == [] and empty["last_event_id"] == f"{hub(client).boot}-0"


@pytest.mark.usefixtures("rider")
async def test_config_names_the_tiles_and_the_fields(client: TestClient, settings: Settings) -> None:
    body = await (await client.get("/api/watch/rider/config")).json()
    assert body["user"] == "rider"
    assert body["tile_url"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert body["tile_attribution"] == "© OpenStreetMap contributors"
    assert {"key": "hr_bpm", "unit": "beats/min", "meaning": "heart rate"} in body["fields"]
    assert len(body["fields"]) == 16


# ----- what one viewer may take: places per address and per link, and the room kept for signed-in viewers -----

ALICE_EVENTS = "/api/watch/alice/events"


async def _refusal(client: TestClient, url: str, headers: dict[str, str] | None = None) -> str:
    """The 429's error message, after checking that it is a 429 with Retry-After."""
    refused = await client.get(url, headers=headers)
    assert refused.status == 429, f"{refused.status}: {'an open stream' if refused.status == 200 else await refused.text()}"
    assert int(refused.headers["Retry-After"]) > 0
    return (await refused.json())["error"]


@pytest.fixture
async def alice_and_bob(add_user: AddUser, accounts: Accounts) -> tuple[str, str]:
    """Alice, private, with two share links; Bob, who has a read share of hers. Returns the links' tokens."""
    await add_user("alice", "pw-alice")
    await add_user("bob", "pw-bob")
    await accounts.add_share("alice", "bob")
    first, _ = await accounts.create_link("alice", "first")
    second, _ = await accounts.create_link("alice", "second")
    return first, second


async def test_one_share_link_cannot_take_the_places_of_the_owner_and_signed_in_readers(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, alice_and_bob: tuple[str, str]
) -> None:
    # The per-address and per-link caps are out of the way here: only the reserve is tested.
    settings = Settings(
        data_dir=tmp_path / "data", live_max_streams_per_user=6, live_reserved_streams=2,
        live_max_streams_per_address=100, live_max_streams_per_link=100,
    )  # fmt: skip
    holder = await aiohttp_client(create_app(settings))
    link, _ = alice_and_bob
    for _ in range(4):  # 6 places, 2 kept for alice and her readers
        await open_stream(holder, f"{ALICE_EVENTS}?token={link}")
    message = await _refusal(holder, f"{ALICE_EVENTS}?token={link}")
    assert message == (
        "too many live viewers of alice without sign-in (limit 4; 2 more are kept for alice "
        "and signed-in readers); try again later"
    )
    owner, reader = await aiohttp_client(holder.server), await aiohttp_client(holder.server)
    await sign_in(owner, "alice", "pw-alice")
    await sign_in(reader, "bob", "pw-bob")
    await open_stream(owner, ALICE_EVENTS)
    await open_stream(reader, ALICE_EVENTS)
    # Now every place is taken: the limit per watched user holds for everyone.
    assert await _refusal(owner, ALICE_EVENTS) == "too many live viewers of alice (limit 6); try again later"


async def test_streams_are_capped_per_client_address_behind_a_trusted_proxy(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, alice_and_bob: tuple[str, str]
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", trusted_proxies=("127.0.0.1",), live_max_streams_per_address=3,
        live_max_streams_per_link=100, live_heartbeat_seconds=0.05,
    )  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    first_link, second_link = alice_and_bob
    carol = {"X-Forwarded-For": "198.51.100.7"}
    streams = [await open_stream(client, f"{ALICE_EVENTS}?token={first_link}", headers=carol) for _ in range(3)]
    # Another link from the same address counts against the same address.
    message = await _refusal(client, f"{ALICE_EVENTS}?token={second_link}", headers=carol)
    assert message == "too many live streams from this address (limit 3); close some and try again later"
    # IPv6 addresses count per /64, as failed sign-ins do: a phone or home has a whole block.
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"):
        await open_stream(client, f"{ALICE_EVENTS}?token={first_link}", headers={"X-Forwarded-For": host})
    assert "from this address" in await _refusal(
        client, f"{ALICE_EVENTS}?token={first_link}", headers={"X-Forwarded-For": "2001:db8:1:2::4"}
    )
    # Someone else is not affected, and neither is the owner behind Carol's address.
    await open_stream(client, f"{ALICE_EVENTS}?token={first_link}", headers={"X-Forwarded-For": "198.51.100.8"})
    owner = await aiohttp_client(client.server)
    await sign_in(owner, "alice", "pw-alice")
    await open_stream(owner, ALICE_EVENTS, headers=carol)
    # A closed stream gives its address the place back.
    streams[0].response.close()
    async with asyncio.timeout(5):
        while True:
            response = await client.get(f"{ALICE_EVENTS}?token={first_link}", headers=carol)
            if response.status == 200:
                break
            assert response.status == 429
            response.release()
            await asyncio.sleep(0.05)


async def test_streams_are_capped_per_share_link(
    aiohttp_client: Callable[..., Awaitable[TestClient]], tmp_path: Path, alice_and_bob: tuple[str, str], accounts: Accounts
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", trusted_proxies=("127.0.0.1",), live_max_streams_per_address=100,
        live_max_streams_per_link=3,
    )  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    first_link, second_link = alice_and_bob
    for n in range(3):  # from three addresses: the link is what counts
        await open_stream(client, f"{ALICE_EVENTS}?token={first_link}", headers={"X-Forwarded-For": f"198.51.100.{n}"})
    message = await _refusal(client, f"{ALICE_EVENTS}?token={first_link}", headers={"X-Forwarded-For": "198.51.100.9"})
    assert message == "too many live streams on this share link (limit 3); try again later"
    await open_stream(client, f"{ALICE_EVENTS}?token={second_link}", headers={"X-Forwarded-For": "198.51.100.9"})
    # With the profile public, viewers need no link: they count per address only.
    await accounts.set_public("alice", True)
    for n in range(4):
        await open_stream(client, ALICE_EVENTS, headers={"X-Forwarded-For": f"203.0.113.{n}"})


def test_a_hub_forgets_addresses_and_links_once_their_streams_close() -> None:
    live = LiveHub(max_streams_per_user=10, reserved_streams=2, max_streams_per_address=2, max_streams_per_link=2)
    viewers = [Viewer(signed_in=False, address=f"198.51.100.{n}", link_id=n % 2) for n in range(6)]
    subscriptions = [live.subscribe("alice", viewer=viewer)[0] for viewer in viewers[:4]]
    with pytest.raises(TooManyStreams, match="share link"):
        live.subscribe("alice", viewer=viewers[4])
    for subscription in subscriptions:
        subscription.close()
    assert live.open_streams == 0
    assert live.counted_keys == 0  # nothing left behind per address or link


async def test_a_real_server_takes_the_stream_limits_from_its_flags_and_environment(tmp_path: Path) -> None:
    server = TrackerProcess(
        tmp_path / "data", tmp_path / "server.log",
        serve_args=["--max-streams-per-user", "4", "--max-streams-per-link", "1", "--trusted-proxy", "127.0.0.1"],
        env={"TRACKER_LIVE_RESERVED_STREAMS": "1", "TRACKER_LIVE_MAX_STREAMS_PER_ADDRESS": "2"},
    )  # fmt: skip
    await asyncio.to_thread(server.add_user, "alice")
    tokens = []
    for label in ("one", "two", "three"):
        printed = (await asyncio.to_thread(server.cli, "link", "create", "alice", "--label", label)).stdout
        tokens.append(printed.split("token=")[1].split()[0])
    server.spawn()
    try:
        await server.ready(timeout=30)
        async with aiohttp.ClientSession() as session:
            url = f"{server.url}{ALICE_EVENTS}?token="

            async def status(token: str, address: str) -> tuple[int, str]:
                response = await session.get(url + token, headers={"X-Forwarded-For": address})
                text = "" if response.status == 200 else (await response.json())["error"]
                if response.status != 200:
                    response.release()
                return response.status, text

            assert await status(tokens[0], "198.51.100.1") == (200, "")
            assert (await status(tokens[0], "198.51.100.2"))[1].startswith("too many live streams on this share link (limit 1)")
            assert await status(tokens[1], "198.51.100.1") == (200, "")
            assert (await status(tokens[2], "198.51.100.1"))[1].startswith("too many live streams from this address (limit 2)")
            assert await status(tokens[2], "198.51.100.3") == (200, "")
            assert (await status(tokens[1], "198.51.100.4"))[1].startswith("too many live viewers of alice without sign-in (limit 3; 1 more")
        await asyncio.to_thread(server.stop, 30)
    finally:
        server.close()
