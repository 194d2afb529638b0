"""`embedq doctor` in local mode against the real database: what passes, and a misconfiguration
named with its fix. (The QStash links are checked end to end in tests/e2e/test_doctor_qstash.py.)"""

from __future__ import annotations

import dataclasses

from embedq import migrations
from embedq.doctor import Doctor, Verdict, passed
from embedq.errors import PermanentError
from embedq.settings import LOCAL_DIMENSIONS
from embedq.testing import HashEmbedder


def verdicts(checks):
    return {c.name: c.verdict for c in checks}


async def test_local_mode_checks_what_local_mode_uses(settings):
    checks = await Doctor(settings, embedder_factory=lambda s: HashEmbedder(dimensions=LOCAL_DIMENSIONS)).run()
    assert verdicts(checks) == {
        "database": Verdict.OK,
        "pgvector": Verdict.OK,
        "migrations": Verdict.OK,
        "provider": Verdict.OK,
        "qstash token": Verdict.SKIPPED,
        "signing keys": Verdict.SKIPPED,
        "webhook": Verdict.SKIPPED,
        "round trip": Verdict.SKIPPED,
    }
    assert passed(checks)
    assert "pgvector 0." in next(c.detail for c in checks if c.name == "pgvector")


async def test_a_provider_of_another_size_is_named_with_its_fix(settings):
    checks = await Doctor(settings, embedder_factory=lambda s: HashEmbedder(dimensions=16)).run()
    provider = next(c for c in checks if c.name == "provider")
    assert provider.verdict is Verdict.FAILED
    assert "16 dimensions" in provider.detail
    assert provider.fix == "set EMBEDQ_DIMENSIONS=16, or a model that has 384"
    assert not passed(checks)


async def test_a_failing_provider_is_named(settings):
    embedder = HashEmbedder(dimensions=LOCAL_DIMENSIONS)
    embedder.fail_next.append(PermanentError("HTTP 401: invalid api key"))
    checks = await Doctor(settings, embedder_factory=lambda s: embedder).run()
    provider = next(c for c in checks if c.name == "provider")
    assert provider.verdict is Verdict.FAILED and "401" in provider.detail


async def test_an_old_schema_asks_for_migrate(dsn, settings):
    migrations.downgrade(dsn, "0004")
    checks = await Doctor(settings, embedder_factory=lambda s: HashEmbedder(dimensions=LOCAL_DIMENSIONS)).run()
    check = next(c for c in checks if c.name == "migrations")
    assert check.verdict is Verdict.FAILED and check.fix == "run `embedq migrate`"
    assert verdicts(checks)["provider"] is Verdict.OK  # the provider does not need the schema


async def test_an_unreachable_database_skips_what_needs_it(settings):
    unreachable = dataclasses.replace(settings, database_url="postgresql://nobody@127.0.0.1:9/nowhere")
    checks = await Doctor(unreachable, embedder_factory=lambda s: HashEmbedder(dimensions=LOCAL_DIMENSIONS)).run()
    assert verdicts(checks)["database"] is Verdict.FAILED
    assert verdicts(checks)["migrations"] is Verdict.SKIPPED
    assert "reachable" in (checks[0].fix or "")
