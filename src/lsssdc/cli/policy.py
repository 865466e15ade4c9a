"""`lsssdc policy`: check policy and order files, print the policy schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from lsssdc.cli.root import app
from lsssdc.errors import EXIT_OK, EXIT_UNUSABLE, LsssdcError, PolicyError, Problem

policy_app = typer.Typer(
    help="The shipped policies and their example orders; check policy and order files.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")


def _kind(path: Path) -> str:
    """'order' when the file has a top-level ``order_version`` key (read bounded, never parsed here)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 20).decode("utf-8", errors="replace")
    except OSError:
        return "policy"  # the loader reports the real problem with its line
    return "order" if re.search(r"^order_version\s*:", head, re.M) else "policy"


@policy_app.command("list")
def list_shipped(as_json: bool = typer.Option(False, "--json", help="Print the list as JSON.")) -> int:
    """List the policies shipped with lsssdc and the example orders written for each.

    A shipped policy or example order is used by its name (``--policy research-with-deaths``)
    from any folder. Example: lsssdc policy list
    """
    from lsssdc import shipped

    pols, ords = shipped.policies(), shipped.orders()
    if as_json:
        rows = [
            {
                "name": p.name,
                "description": p.title,
                "file": str(p.path),
                "example_orders": [o.name for o in ords if o.policy == p.name],
            }
            for p in pols
        ]
        typer.echo(json.dumps({"policies": rows}, indent=2, ensure_ascii=False))
        return EXIT_OK
    for p in pols:
        typer.echo(f"{p.name}")
        typer.echo(f"    {p.title}")
        for o in ords:
            if o.policy == p.name:
                typer.echo(f"    example order: {o.name}  ({o.title})")
    typer.echo("\nUse a name with --policy/--order, or `lsssdc policy example-order NAME > order.yaml`.")
    return EXIT_OK


@policy_app.command("show")
def show(name: str = typer.Argument(..., help="A shipped policy's name (see `lsssdc policy list`).")) -> int:
    """Print a shipped policy's YAML, to read it or to start a policy of one's own.

    Example: lsssdc policy show research-with-deaths > my-policy.yaml
    """
    from lsssdc import shipped

    typer.echo(shipped.resolve(_bare(name), "policy").read_text(encoding="utf-8"), nl=False)
    return EXIT_OK


@policy_app.command("example-order")
def example_order(
    name: str = typer.Argument(..., help="An example order's name, or a shipped policy's name."),
) -> int:
    """Print a shipped example order (YAML), to edit into a real one.

    NAME is an example order's name, or a shipped policy's name when it has one example order.
    Example: lsssdc policy example-order mortality-2010-2023 > order.yaml
    """
    from lsssdc import shipped

    name = _bare(name)
    if name in {p.name for p in shipped.policies()}:
        mine = [o for o in shipped.orders() if o.policy == name]
        if len(mine) != 1:
            raise PolicyError(
                Problem(
                    "usage",
                    f"the policy '{name}' has {len(mine)} example orders; name one: "
                    + ", ".join(o.name for o in mine),
                )
            )
        path = mine[0].path
    else:
        path = shipped.resolve(name, "order")
    typer.echo(path.read_text(encoding="utf-8"), nl=False)
    return EXIT_OK


def _bare(name: str) -> str:
    if _looks_like_path(name):
        raise PolicyError(
            Problem("usage", "give a shipped name (see `lsssdc policy list`), not a file", file=None)
        )
    return name


def _looks_like_path(name: str) -> bool:
    from lsssdc import shipped

    return shipped.looks_like_path(name)


@policy_app.command("check")
def check(
    files: list[Path] = typer.Argument(..., help="Policy and order files (YAML)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> int:
    """Load every file, report every problem with file and line; check orders against their policy.

    An order is checked against the policy of the name it gives, among the files given.
    Example: lsssdc policy check my-policy.yaml order.yaml
    """
    from lsssdc import policy as P

    results: list[dict] = []
    policies: dict[str, P.Policy] = {}
    orders: list[tuple[Path, P.Order]] = []
    pol: P.Policy | None
    for f in files:
        try:
            if _kind(f) == "order":
                orders.append((f, P.load_order(f)))
            else:
                pol = P.load_policy(f)
                policies[pol.name] = pol
                results.append(
                    {"file": str(f), "kind": "policy", "name": pol.name, "ok": True, "hash": pol.hash}
                )
        except LsssdcError as exc:
            results.append({"file": str(f), "ok": False, "problems": [p.to_dict() for p in exc.problems]})
    for f, order in orders:
        try:
            pol = policies.get(order.policy)
            if pol is None:
                raise PolicyError(
                    Problem(
                        "no_policy",
                        f"the order names the policy '{order.policy}'; give its file in the same command",
                        file=str(f),
                    )
                )
            P.check_order(order, pol)
            results.append(
                {
                    "file": str(f),
                    "kind": "order",
                    "name": order.order_id,
                    "ok": True,
                    "policy": pol.name,
                    "hash": order.hash,
                }
            )
        except LsssdcError as exc:
            results.append({"file": str(f), "ok": False, "problems": [p.to_dict() for p in exc.problems]})
    ok = all(r["ok"] for r in results)
    if as_json:
        typer.echo(json.dumps({"ok": ok, "files": results}, indent=2))
    else:
        for r in results:
            if r["ok"]:
                typer.echo(f"ok      {r['file']} ({r['kind']} {r['name']})")
            else:
                for p in r["problems"]:
                    where = r["file"] + (f":{p['line']}" if p.get("line") else "")
                    hint = f" ({p['hint']})" if p.get("hint") else ""
                    typer.echo(f"error   {where}: {p['message']}{hint}", err=True)
    return EXIT_OK if ok else EXIT_UNUSABLE


@policy_app.command("schema")
def schema(kind: str = typer.Argument("policy", help="policy or order")) -> int:
    """Print the JSON Schema of policy or order files (for editors).

    Example: lsssdc policy schema policy > policy.schema.json
    """
    from lsssdc import policy as P

    if kind not in ("policy", "order"):
        raise PolicyError(Problem("usage", "schema takes 'policy' or 'order'"))
    typer.echo(json.dumps(P.policy_schema() if kind == "policy" else P.order_schema(), indent=2))
    return EXIT_OK
