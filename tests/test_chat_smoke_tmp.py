pytest_plugins = ["tests.chat_fixtures"]
from tests.chat_fixtures import make_agent

async def test_smoke(cast, chat_server, department):
    agent_id = await make_agent(chat_server.ctx, department)
    c = await cast.customer()
    data = await c.ok("chat:start", {"department": department})
    print(data)
    a = await cast.staff(agent_id)
    print(await a.expect("chat:assigned"))
    print(await c.expect("chat:assigned"))
    print(c.received)
