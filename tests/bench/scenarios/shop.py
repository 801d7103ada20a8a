"""A test scenario: browse 3x as often as buy; checks on both; one task raises on purpose rarely."""

from perfkit.bench import check, task, think

host = "http://127.0.0.1:1"  # replaced by --host in the tests


@task(weight=3)
async def browse(client):
    r = await client.get("/json", name="list")
    check(r.status == 200 and r.json() == {"ok": True}, "list is json")
    await think(0.001)


@task(weight=1)
async def buy(client):
    r = await client.post("/status/201", json={"ticket": 1}, name="order")
    check(r.status == 201, "order created")
    r = await client.get("/chunked")
    check(r.text == "hello chunked world", "chunked body")
