"""/api/v1/analytics/* and /api/v1/feedback/analytics: figures checked against a data set this
module writes with explicit timestamps into a department of its own, in March 2025; RBAC and
window validation."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from helpers import execute, problem

ANALYTICS = "/api/v1/analytics"
FEEDBACK_ANALYTICS = "/api/v1/feedback/analytics"
REPORTS = ("tickets", "chat", "response-time", "satisfaction")
UTC = dt.timezone.utc
WINDOW = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-08T00:00:00Z", "granularity": "day"}


def at(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2025, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
async def data(ctx) -> dict:
    """Tickets, escalations, chats and feedback of one department, at known times."""
    dept = f"analytics-{uuid.uuid4().hex[:10]}"
    agent_a, agent_b = uuid.uuid4(), uuid.uuid4()
    tickets = {}

    async def ticket(
        name, created, *, status, priority, category, agent, first_response=None, resolved=None, closed=None, reopened=0
    ):
        tickets[name] = uuid.uuid4()
        await execute(
            ctx,
            """
            INSERT INTO support_tickets (id, ticket_number, customer_id, agent_id, category, department, priority,
                status, subject, description, first_response_at, resolved_at, closed_at, reopened_count,
                created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'analytics', $9, $10, $11, $12, $13, $14, $14)""",
            tickets[name],
            f"AN-{uuid.uuid4().hex[:12]}",
            uuid.uuid4(),
            agent,
            category,
            dept,
            priority,
            status,
            ctx.cipher.encrypt("analytics data", "support_tickets.description"),
            first_response,
            resolved,
            closed,
            reopened,
            created,
        )

    await ticket(
        "t1",
        at(1, 10),
        status="resolved",
        priority="high",
        category="billing",
        agent=agent_a,
        first_response=at(1, 11),
        resolved=at(2, 10),
        reopened=1,
    )
    await ticket(
        "t2", at(1, 12), status="open", priority="low", category="billing", agent=agent_b, first_response=at(1, 14)
    )
    await ticket(
        "t3",
        at(3, 9),
        status="closed",
        priority="medium",
        category="bookings",
        agent=agent_a,
        first_response=at(3, 9, 30),
        resolved=at(3, 11),
        closed=at(3, 12),
    )
    await ticket("t4", at(20, month=2), status="open", priority="low", category="billing", agent=agent_a)
    await ticket(
        "t5", at(25, month=2), status="resolved", priority="low", category="billing", agent=agent_b, resolved=at(4, 8)
    )
    await ticket("t6", at(10, 9), status="open", priority="low", category="billing", agent=agent_a)
    for name, when in (("t1", at(1, 11)), ("t2", at(2, 9)), ("t4", at(21, month=2))):
        await execute(
            ctx,
            "INSERT INTO ticket_escalations (ticket_id, trigger, from_level, to_level, from_priority, "
            "to_priority, created_at) VALUES ($1, 'manual', 0, 1, 'low', 'high', $2)",
            tickets[name],
            when,
        )

    sessions = {}

    async def session(
        name, started, *, status, agent=None, assigned=None, first_response=None, ended=None, duration=None
    ):
        sessions[name] = uuid.uuid4()
        await execute(
            ctx,
            """
            INSERT INTO chat_sessions (id, session_id, customer_id, agent_id, department, status, started_at,
                assigned_at, first_response_at, ended_at, duration_seconds, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $7)""",
            sessions[name],
            f"an-{uuid.uuid4().hex}",
            uuid.uuid4(),
            agent,
            dept,
            status,
            started,
            assigned,
            first_response,
            ended,
            duration,
        )

    await session(
        "s1",
        at(1, 10),
        status="ended",
        agent=agent_a,
        assigned=at(1, 10, 1),
        first_response=at(1, 10, 2),
        ended=at(1, 10, 31),
        duration=1800,
    )
    await session(
        "s2",
        at(1, 10, 10),
        status="ended",
        agent=agent_b,
        assigned=at(1, 10, 13),
        first_response=at(1, 10, 15),
        ended=at(1, 10, 20),
        duration=420,
    )
    await session("s3", at(1, 10, 15), status="timed_out", ended=at(1, 10, 20))
    await session("s4", at(2, 9), status="abandoned", ended=at(2, 9, 1))

    async def feedback(created, rating, *, ticket=None, chat=None, agent, category, sentiment=None):
        # No department given: the trigger takes it from the ticket or the session.
        await execute(
            ctx,
            """
            INSERT INTO feedback (ticket_id, chat_session_id, customer_id, agent_id, rating, category,
                sentiment_score, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)""",
            tickets.get(ticket),
            sessions.get(chat),
            uuid.uuid4(),
            agent,
            rating,
            category,
            sentiment,
            created,
        )

    await feedback(at(2, 12), 5, ticket="t1", agent=agent_a, category="billing", sentiment=0.8)
    await feedback(at(2, 13), 2, ticket="t2", agent=agent_b, category="billing", sentiment=-0.6)
    await feedback(at(3, 13), 4, ticket="t3", agent=agent_a, category="bookings", sentiment=0.2)
    await feedback(at(1, 11), 3, chat="s1", agent=agent_a, category="bookings")
    await feedback(at(5, 9), 5, chat="s2", agent=agent_b, category="chat")
    await feedback(at(25, month=2), 1, ticket="t5", agent=agent_b, category="billing")  # before the window
    return {"dept": dept, "agent_a": agent_a, "agent_b": agent_b}


@pytest.fixture
def supervisor(users):
    return users.new("supervisor")[1]


async def get(client, report: str, headers: dict, **params) -> dict:
    url = FEEDBACK_ANALYTICS if report == "feedback" else f"{ANALYTICS}/{report}"
    response = await client.get(url, params={k: str(v) for k, v in params.items()}, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


def day(n: int) -> str:
    return at(n).isoformat()


# ---------------------------------------------------------------- tickets


async def test_ticket_figures(client, data, supervisor):
    report = await get(client, "tickets", supervisor, **WINDOW, department=data["dept"])
    assert report["from"] == "2025-03-01T00:00:00+00:00" and report["to"] == "2025-03-08T00:00:00+00:00"
    assert report["granularity"] == "day" and report["department"] == data["dept"]
    assert report["totals"] == {
        "created": 3,
        "resolved": 3,
        "reopened": 1,
        "escalated": 2,
        "backlog": 2,
        "sla_breached": 0,
    }
    assert report["by_status"] == {"resolved": 1, "open": 1, "closed": 1}
    assert report["by_priority"] == {"high": 1, "low": 1, "medium": 1}
    assert report["by_category"] == {"billing": 2, "bookings": 1}
    series = {b["bucket"]: (b["created"], b["resolved"]) for b in report["series"]}
    assert list(series) == [day(n) for n in range(1, 8)]
    assert series[day(1)] == (2, 0) and series[day(2)] == (0, 1) and series[day(3)] == (1, 1)
    assert series[day(4)] == (0, 1) and series[day(7)] == (0, 0)


async def test_ticket_figures_for_one_agent(client, data, supervisor):
    report = await get(client, "tickets", supervisor, **WINDOW, department=data["dept"], agent_id=data["agent_a"])
    assert report["agent_id"] == str(data["agent_a"])
    assert report["totals"] == {
        "created": 2,
        "resolved": 2,
        "reopened": 1,
        "escalated": 1,
        "backlog": 1,
        "sla_breached": 0,
    }


async def test_hourly_series_in_a_time_zone(client, data, supervisor):
    report = await get(
        client,
        "tickets",
        supervisor,
        department=data["dept"],
        granularity="hour",
        tz="America/New_York",
        **{"from": "2025-03-01T05:00:00Z", "to": "2025-03-02T05:00:00Z"},
    )
    assert len(report["series"]) == 24 and report["tz"] == "America/New_York"
    assert report["series"][0]["bucket"] == "2025-03-01T05:00:00+00:00"
    created = {b["bucket"]: b["created"] for b in report["series"] if b["created"]}
    assert created == {"2025-03-01T10:00:00+00:00": 1, "2025-03-01T12:00:00+00:00": 1}


async def test_weekly_buckets_start_on_monday_in_the_zone(client, data, supervisor):
    report = await get(
        client,
        "tickets",
        supervisor,
        department=data["dept"],
        granularity="week",
        tz="Europe/Berlin",
        **{"from": "2025-03-01T00:00:00Z", "to": "2025-03-15T00:00:00Z"},
    )
    assert [b["bucket"] for b in report["series"]] == [
        "2025-02-23T23:00:00+00:00",
        "2025-03-02T23:00:00+00:00",
        "2025-03-09T23:00:00+00:00",
    ]
    assert [b["created"] for b in report["series"]] == [2, 1, 1]


# ---------------------------------------------------------------- chat


async def test_chat_figures(client, data, supervisor):
    report = await get(client, "chat", supervisor, **WINDOW, department=data["dept"])
    assert report["totals"] == {"sessions": 4, "answered": 2, "timed_out": 1, "abandoned": 1}
    assert report["wait_seconds"] == {"avg": 120.0, "p50": 120.0, "p90": 168.0, "count": 2}
    assert report["duration_seconds"] == {"avg": 1110.0, "p50": 1110.0, "p90": 1662.0, "count": 2}
    assert report["peak_concurrent"] == 3
    series = {b["bucket"]: (b["sessions"], b["answered"]) for b in report["series"]}
    assert series[day(1)] == (3, 2) and series[day(2)] == (1, 0) and series[day(3)] == (0, 0)


async def test_chat_figures_for_one_agent(client, data, supervisor):
    report = await get(client, "chat", supervisor, **WINDOW, department=data["dept"], agent_id=data["agent_b"])
    assert report["totals"] == {"sessions": 1, "answered": 1, "timed_out": 0, "abandoned": 0}
    assert report["wait_seconds"]["avg"] == 180.0 and report["peak_concurrent"] == 1


# ---------------------------------------------------------------- response times


async def test_response_time_figures(client, data, supervisor):
    report = await get(client, "response-time", supervisor, **WINDOW, department=data["dept"])
    assert report["tickets"]["first_response_seconds"] == {"avg": 4200.0, "p50": 3600.0, "p90": 6480.0, "count": 3}
    assert report["tickets"]["resolution_seconds"] == {"avg": 242400.0, "p50": 86400.0, "p90": 524160.0, "count": 3}
    assert report["chats"]["first_response_seconds"] == {"avg": 90.0, "p50": 90.0, "p90": 114.0, "count": 2}
    first = report["series"][0]
    assert first == {
        "bucket": day(1),
        "ticket_first_response_seconds": 5400.0,
        "ticket_resolution_seconds": None,
        "chat_first_response_seconds": 90.0,
    }
    assert report["series"][3]["ticket_resolution_seconds"] == 633600.0


async def test_empty_window_has_empty_durations(client, data, supervisor):
    report = await get(
        client,
        "response-time",
        supervisor,
        department=data["dept"],
        **{"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"},
    )
    assert report["tickets"]["first_response_seconds"] == {"avg": None, "p50": None, "p90": None, "count": 0}


# ---------------------------------------------------------------- satisfaction and feedback analytics


async def test_satisfaction_figures(client, data, supervisor):
    report = await get(client, "satisfaction", supervisor, **WINDOW, department=data["dept"])
    assert report["count"] == 5 and report["average_rating"] == 3.8 and report["csat"] == 0.6
    assert report["distribution"] == {"1": 0, "2": 1, "3": 1, "4": 1, "5": 2}
    assert report["average_sentiment"] == 0.13
    assert report["by_agent"] == [
        {"agent_id": str(data["agent_a"]), "count": 3, "average_rating": 4.0, "csat": 0.6667},
        {"agent_id": str(data["agent_b"]), "count": 2, "average_rating": 3.5, "csat": 0.5},
    ]
    assert report["by_category"] == {
        "billing": {"count": 2, "average_rating": 3.5},
        "bookings": {"count": 2, "average_rating": 3.5},
        "chat": {"count": 1, "average_rating": 5.0},
    }
    series = {b["bucket"]: (b["count"], b["average_rating"]) for b in report["series"]}
    assert series[day(1)] == (1, 3.0) and series[day(2)] == (2, 3.5) and series[day(3)] == (1, 4.0)
    assert series[day(4)] == (0, None) and series[day(5)] == (1, 5.0)


async def test_feedback_analytics_match_satisfaction_and_filter_by_category(client, data, supervisor):
    satisfaction = await get(client, "satisfaction", supervisor, **WINDOW, department=data["dept"])
    feedback = await get(client, "feedback", supervisor, **WINDOW, department=data["dept"])
    assert {k: v for k, v in feedback.items() if k != "category"} == satisfaction
    billing = await get(client, "feedback", supervisor, **WINDOW, department=data["dept"], category="billing")
    assert billing["count"] == 2 and billing["category"] == "billing"
    assert billing["distribution"] == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}


# ---------------------------------------------------------------- access


async def test_agent_sees_only_their_own_figures(client, data, users):
    agent = users.headers(data["agent_a"], "agent")
    report = await get(client, "tickets", agent, **WINDOW, department=data["dept"])
    assert report["agent_id"] == str(data["agent_a"]) and report["totals"]["created"] == 2
    mine = await get(client, "feedback", agent, **WINDOW, department=data["dept"])
    assert mine["count"] == 3 and [a["agent_id"] for a in mine["by_agent"]] == [str(data["agent_a"])]
    same = await get(client, "satisfaction", agent, **WINDOW, department=data["dept"], agent_id=data["agent_a"])
    assert same["count"] == 3


@pytest.mark.parametrize("report", [*REPORTS, "feedback"])
async def test_agent_asking_for_another_agent_is_403(client, data, users, report):
    agent = users.headers(data["agent_a"], "agent")
    url = FEEDBACK_ANALYTICS if report == "feedback" else f"{ANALYTICS}/{report}"
    await problem(await client.get(url, params={"agent_id": str(data["agent_b"])}, headers=agent), 403)


@pytest.mark.parametrize("report", [*REPORTS, "feedback"])
async def test_customers_get_403_and_anonymous_401(client, users, report):
    _, customer = users.new("customer")
    url = FEEDBACK_ANALYTICS if report == "feedback" else f"{ANALYTICS}/{report}"
    await problem(await client.get(url, headers=customer), 403)
    await problem(await client.get(url), 401)


@pytest.mark.parametrize("role", ["admin", "service"])
async def test_admins_and_services_see_everything(client, data, users, role):
    _, headers = users.new(role)
    report = await get(client, "chat", headers, **WINDOW, department=data["dept"])
    assert report["totals"]["sessions"] == 4


# ---------------------------------------------------------------- window


async def test_default_window_is_the_last_30_days(client, supervisor):
    report = await get(client, "tickets", supervisor)
    start = dt.datetime.fromisoformat(report["from"])
    end = dt.datetime.fromisoformat(report["to"])
    assert end - start == dt.timedelta(days=30)
    assert abs((dt.datetime.now(UTC) - end).total_seconds()) < 60
    assert len(report["series"]) in (30, 31) and report["granularity"] == "day" and report["tz"] == "UTC"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-03-08T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "from"),
        ({"from": "2025-03-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}, "from"),
        ({"granularity": "month"}, "granularity"),
        ({"tz": "Mars/Phobos"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-03-01T00:00:00"}, "from"),
        ({"agent_id": "A"}, "agent_id"),
        ({"department": ""}, "department"),
        ({"colour": "red"}, "colour"),
        ({"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z", "granularity": "hour"}, "granularity"),
    ],
)
@pytest.mark.parametrize("report", [*REPORTS, "feedback"])
async def test_invalid_windows_are_422(client, supervisor, params, field, report):
    url = FEEDBACK_ANALYTICS if report == "feedback" else f"{ANALYTICS}/{report}"
    body = await problem(await client.get(url, params=params, headers=supervisor), 422)
    assert field in body["errors"], body
