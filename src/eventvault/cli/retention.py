"""``eventvault retention``: show the policy, plan (a dry run), apply, run on a schedule."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import msgspec

from .. import errors
from ..spi import require_retaining
from ..store import EventStore
from .common import Ctx, _handle_errors, _time, pass_ctx
from .output import iso_seconds

__all__ = ["retention"]


@click.group("retention")
def retention() -> None:
    """Retention policy: what is kept, and for how long (default: forever).

    \b
    Example:
      eventvault retention show
      eventvault retention plan
      eventvault retention apply --yes
      eventvault retention run --every 1h
    """


@retention.command("show")
@pass_ctx
@_handle_errors
def retention_show(ctx: Ctx, /) -> None:
    """Print the effective retention policy in plain words.

    \b
    Example:
      eventvault retention show
    """
    from ..retention import resolve_policy

    policy = resolve_policy(ctx.config().retention)
    if policy is None:
        click.echo("No retention policy: every event is kept forever (the default).")
        return
    for line in policy.describe():
        click.echo(line)


def _policy_or_say(ctx: Ctx, store: EventStore) -> Any:
    policy = store.retention_policy
    if policy is None:
        click.echo("No retention policy: every event is kept forever (the default).")
    return policy


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError  # pragma: no cover


def _print_plan(plan: Any) -> None:
    click.echo(
        f"Retention plan for the {plan.backend} store at {iso_seconds(plan.now)} "
        f"(head {plan.head:,}; positions up to {plan.limit:,} may be removed)"
    )
    if plan.backend == "file" and plan.limit < plan.head:
        click.echo(
            f"  (the file backend never touches its active segment: positions above "
            f"{plan.limit:,} wait until it is sealed)"
        )
    click.echo("Policy:")
    for line in plan.policy:
        click.echo(f"  {line}")
    click.echo("")
    click.echo(
        f"{'rule':<20} {'events':>12}  {'positions':<23} {'oldest':<20} {'newest':<20} "
        f"{'bytes':>10}"
    )
    for g in plan.groups:
        span = f"{g.first_position:,} - {g.last_position:,}" if g.count else "-"
        click.echo(
            f"{g.rule:<20} {g.count:>12,}  {span:<23} {iso_seconds(g.oldest):<20} "
            f"{iso_seconds(g.newest):<20} {_human_bytes(g.bytes) if g.count else '-':>10}"
        )
    click.echo("")
    if plan.count:
        click.echo(f"Would remove {plan.count:,} events ({_human_bytes(plan.bytes)}).")
    else:
        click.echo("Nothing to remove.")


_AT = click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Plan as of this time instead of now (ISO-8601, '2h' ago, '+30d' ahead).",
)
_RFORMAT = click.option(
    "--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True
)


@retention.command("plan")
@_AT
@_RFORMAT
@pass_ctx
@_handle_errors
def retention_plan(ctx: Ctx, /, at: str | None, fmt: str) -> None:
    """Dry run: what the policy would remove now, per rule. Removes nothing.

    \b
    Example:
      eventvault retention plan
      eventvault retention plan --at +30d --format json
    """
    now = _time(at, "--at")  # (a bad --at is an error even when there is no policy)
    with ctx.store() as store:
        if _policy_or_say(ctx, store) is None:
            return
        plan = store.plan_retention(now=now)
    if fmt == "json":
        click.echo(_plan_json(plan))
    else:
        _print_plan(plan)


def _plan_json(plan: Any, **extra: Any) -> str:
    body = msgspec.to_builtins(plan)
    body["count"] = plan.count
    body["bytes"] = plan.bytes
    body.update(extra)
    return msgspec.json.encode(body).decode()


@retention.command("apply")
@_AT
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@_RFORMAT
@pass_ctx
@_handle_errors
def retention_apply(ctx: Ctx, /, at: str | None, yes: bool, fmt: str) -> None:
    """Remove what the policy says, after showing the plan and asking.

    Appends a receipt (eventvault.retention.applied) naming what goes and the
    chain hashes at the cuts, so `eventvault verify` still passes afterwards.

    \b
    Example:
      eventvault retention apply          # shows the plan, asks
      eventvault retention apply --yes    # in scripts
    """
    now = _time(at, "--at")
    with ctx.store() as store:
        policy = _policy_or_say(ctx, store)
        if policy is None:
            return
        plan = store.plan_retention(now=now)
        if fmt == "text":
            _print_plan(plan)
        if not plan.count:
            if fmt == "json":
                click.echo(_plan_json(plan, removed=0, receipt_positions=[]))
            return
        if not yes:
            if not sys.stdin.isatty():
                raise errors.ValidationError(
                    "refusing to remove events without confirmation; pass --yes"
                )
            click.confirm(f"Remove {plan.count:,} events?", abort=True, err=True)
        with ctx.progress("removing", plan.count) as advance:
            report = store.apply_retention(
                plan, policy=policy, progress=lambda done, _total: advance(done)
            )
    if fmt == "json":
        click.echo(
            _plan_json(
                plan,
                removed=report.removed,
                runs=report.runs,
                receipt_positions=report.receipt_positions,
                seconds=report.seconds,
            )
        )
    else:
        from ..retention.schedule import describe_report

        click.echo(describe_report(report))


@retention.command("run")
@click.option(
    "--every",
    metavar="DURATION",
    help="How often to apply the policy (default: retention.check_interval).",
)
@pass_ctx
@_handle_errors
def retention_run(ctx: Ctx, /, every: str | None) -> None:
    """Apply the policy now and then on a schedule, until interrupted.

    Logs one line per run on stderr. Stops cleanly on Ctrl-C or SIGTERM.

    \b
    Example:
      eventvault retention run --every 1h
    """
    import signal
    import threading

    from ..retention.schedule import RetentionScheduler
    from ..timeutil import parse_duration

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    with ctx.store() as store:
        policy = _policy_or_say(ctx, store)
        if policy is None:
            return
        require_retaining(store.backend)  # fail now, not once an hour forever
        try:
            interval = parse_duration(every) if every is not None else policy.check_interval
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--every") from None
        if not 1 <= interval.total_seconds() <= 365 * 86400:
            raise click.BadParameter("must be from 1s to 365d", param_hint="--every")
        scheduler = RetentionScheduler(store, policy, interval)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: scheduler.request_stop())
        ctx.say(f"applying the retention policy every {every or interval}; Ctrl-C to stop")
        try:
            scheduler.run_forever()
        except KeyboardInterrupt:
            scheduler.stop()
    ctx.say(f"stopped after {scheduler.runs} run(s)")
