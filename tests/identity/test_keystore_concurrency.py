"""Several processes create the same project's key in one key store at once: the store must end
with ONE key, and every process must get the same pseudonyms for the same personnummer (a second
key would give a project two pseudonyms for one person, and re-identification a wrong answer).

The checks read the store's JSON file and compare the pseudonyms the processes returned."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
from typing import Any

import pytest

from lsssdc.identity.keystore import KdfParams, KeyStore
from lsssdc.identity.pseudonym import pseudonymise
from lsssdc.register import synth

PASS = "correct horse battery staple"
PROJECT = "PRJ-CONCURRENT-1"
PROCESSES = 4


def _create_and_pseudonymise(path: str, persons: list[str], barrier: Any, results: Any) -> None:
    """Open the store, wait for the others, then ask for the project's key (creating it)."""
    try:
        store = KeyStore.open(path, PASS)
        barrier.wait(timeout=120)
        key = store.pseudonym_key(PROJECT, create=True)
        results.put(("ok", key.version, list(pseudonymise(persons, key))))
    except Exception as exc:  # reported to the test, which names it
        code = getattr(exc, "problems", [None])[0]
        results.put(("error", getattr(code, "code", type(exc).__name__), str(exc)))


@pytest.fixture(scope="module")
def race(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """PROCESSES processes open one store, wait for each other, then create PROJECT's key at once."""
    path = tmp_path_factory.mktemp("keystore-race") / "keys" / "lsssdc-keys.json"
    kdf = KdfParams(algorithm="argon2id", salt=os.urandom(16), iterations=1, lanes=1, memory_kib=64)
    KeyStore.create(path, PASS, kdf=kdf)
    persons = [str(p) for p in synth.synthesise([2024], persons=30, seed=3).register["personnummer"].unique()]
    assert len(persons) >= 10

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_create_and_pseudonymise, args=(str(path), persons, barrier, results))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    outcomes = []
    with contextlib.suppress(queue.Empty):
        for _ in procs:
            outcomes.append(results.get(timeout=300))
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert len(outcomes) == PROCESSES
    return {"path": path, "persons": persons, "outcomes": outcomes}


def test_concurrent_creation_never_forks_the_key(race: dict[str, Any]) -> None:
    doc = json.loads(race["path"].read_text(encoding="utf-8"))  # the store's file itself
    assert list(doc["projects"]) == [PROJECT]
    assert list(doc["projects"][PROJECT]["versions"]) == ["1"], "the project's key was forked"
    kept = KeyStore.open(race["path"], PASS).pseudonym_key(PROJECT)
    stored = list(pseudonymise(race["persons"], kept))
    assert len(set(stored)) == len(race["persons"])
    got = [o for o in race["outcomes"] if o[0] == "ok"]
    assert got, "no process got a key"
    for _, version, pseudonyms in got:  # whoever got a key got the one the store keeps
        assert (version, pseudonyms) == (1, stored), "a process used a key the store does not keep"


def test_every_concurrent_creator_gets_the_one_key(race: dict[str, Any]) -> None:
    failed = [o for o in race["outcomes"] if o[0] != "ok"]
    assert not failed, f"{len(failed)} of {PROCESSES} processes got no key: {failed[0][1]}: {failed[0][2]}"
    assert len({tuple(o[2]) for o in race["outcomes"]}) == 1, "the processes got different pseudonyms"
