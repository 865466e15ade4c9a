import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: every test actor's own secret (each actor's key is wrapped under it); the separation of
#: actors by secret is tested in tests/identity/test_keystore.py with different secrets
ACTOR_SECRET = "an actor's own secret, for tests"
os.environ.setdefault("LSSSDC_ACTOR_SECRET", ACTOR_SECRET)


def roles_for(name: str) -> tuple[str, ...]:
    """The role a test actor has, by its name."""
    if name.startswith("reviewer"):
        return ("reviewer",)
    if name in ("ordering-service", "preparer"):
        return ("preparer",)
    return ("custodian",)
