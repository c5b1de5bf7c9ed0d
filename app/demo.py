"""Demo data for `support-service dev`: departments, agents, a supervisor, articles, tickets.

Built through the service layer (so the data obeys the same rules as real traffic) with fixed
user ids, so the tokens dev prints stay valid across runs. Loaded once; a second run reuses it.
"""

from __future__ import annotations

import uuid

from app.auth import Principal, RequestMeta
from app.context import AppContext
from app.services import agents, automation_rules, kb, tickets

CUSTOMER = uuid.UUID("00000000-0000-4000-8000-00000000c001")
AGENT = uuid.UUID("00000000-0000-4000-8000-00000000a001")
AGENT_2 = uuid.UUID("00000000-0000-4000-8000-00000000a002")
SUPERVISOR = uuid.UUID("00000000-0000-4000-8000-00000000b001")
ADMIN = uuid.UUID("00000000-0000-4000-8000-00000000d001")

USERS = {
    "customer": (CUSTOMER, "Casey Customer", "casey@example.com"),
    "agent": (AGENT, "Alex Agent", "alex@support.example"),
    "supervisor": (SUPERVISOR, "Sam Supervisor", "sam@support.example"),
    "admin": (ADMIN, "Ada Admin", "ada@support.example"),
}

DEPARTMENTS = [
    ("general", "Everything not routed elsewhere", [], None),
    (
        "billing",
        "Payments, refunds and invoices",
        ["payments", "refund", "invoice"],
        "Billing answers on weekdays, 9:00-17:00 UTC. Leave a message and we will reply by e-mail.",
    ),
    ("bookings", "Changes and cancellations of bookings", ["booking", "cancellation", "reservation"], None),
]

# Automatic categorisation of tickets that come without a category (the automation issue).
CATEGORY_RULES = [
    (["cancel", "booking", "reservation", "check-in", "dates"], "bookings"),
    (["refund", "invoice", "payment", "charge"], "billing"),
]

ARTICLES = [
    (
        "How do I cancel a booking?",
        "Open **My bookings**, choose the booking and press *Cancel*. "
        "Free cancellation applies until 24 hours before check-in.",
        "bookings",
        ["cancellation", "booking"],
    ),
    (
        "When will I get my refund?",
        "Refunds reach your card within 5-10 business days after the cancellation is confirmed.",
        "billing",
        ["refund", "payments"],
    ),
    (
        "Changing the dates of a reservation",
        "You can change dates from **My bookings** if the "
        "property allows it; price differences are charged or refunded.",
        "bookings",
        ["reservation", "dates"],
    ),
    (
        "Downloading an invoice",
        "Invoices are under **Account > Invoices** as PDF once the stay is completed.",
        "billing",
        ["invoice"],
    ),
]


async def load(ctx: AppContext) -> bool:
    """Load the demo data unless it is there already; True when it was loaded now."""
    async with ctx.db.connection() as conn:
        if await ctx.db.q.demo_loaded(conn):
            return False
    admin = Principal(ADMIN, "admin", "Ada Admin", "ada@support.example")
    meta = RequestMeta(request_id="demo-data", transport="cli")
    async with ctx.db.transaction() as conn:
        for name, description, categories, offline in DEPARTMENTS:
            await ctx.db.q.upsert_department(
                conn, name=name, description=description, categories=categories, offline_message=offline
            )
    supervisor = Principal(SUPERVISOR, "supervisor", "Sam Supervisor")
    for title, content, category, tags in ARTICLES:
        await kb.create_article(
            ctx,
            supervisor,
            meta,
            {"title": title, "content": content, "category": category, "tags": tags, "is_published": True},
        )
    for keywords, category in CATEGORY_RULES:
        await automation_rules.create_rule(
            ctx,
            admin,
            meta,
            "categorization",
            {"keywords": keywords, "category": category, "priority": 0, "is_active": True},
        )
    await automation_rules.create_rule(
        ctx,
        admin,
        meta,
        "priority",
        {
            "conditions": {"keywords_any": ["urgent", "asap", "immediately"]},
            "set_priority": "high",
            "priority": 0,
            "is_active": True,
        },
    )
    roster = [
        (AGENT, "Alex Agent", "agent", "bookings", ["booking", "cancellation"]),
        (AGENT_2, "Bea Agent", "agent", "billing", ["refund", "invoice"]),
        (SUPERVISOR, "Sam Supervisor", "supervisor", "general", []),
    ]
    for user_id, name, role, department, skills in roster:
        await agents.create_agent(
            ctx,
            admin,
            meta,
            {
                "user_id": user_id,
                "display_name": name,
                "role": role,
                "department": department,
                "skills": skills,
                "max_tickets": 10,
                "max_chats": 3,
                "is_available": True,
                "performance_score": None,
            },
        )
    customer = Principal(CUSTOMER, "customer", "Casey Customer", "casey@example.com")
    first = await tickets.create_ticket(
        ctx,
        customer,
        meta,
        {
            "subject": "Refund for cancelled stay",
            "category": "billing",
            "description": "I cancelled booking BK-1042 last week and have not seen the refund yet.",
        },
    )
    await tickets.create_ticket(
        ctx,
        customer,
        meta,
        {
            "subject": "Change check-in date",
            "category": "bookings",
            "description": "Can I move my reservation in Lisbon from 12 to 14 March?",
        },
    )
    await tickets.update_ticket(ctx, supervisor, meta, first["id"], {"agent_id": AGENT_2, "status": "in_progress"})
    await tickets.add_message(
        ctx,
        Principal(AGENT_2, "agent"),
        meta,
        first["id"],
        {"message": "Thanks Casey, I am checking with our payment provider and will update you today."},
    )
    return True
