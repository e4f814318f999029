"""`hie-notify ack`: who acknowledged the change's notices and who objected; with `--resolve
--reason TEXT`, record that the open objections were resolved, by someone other than the
change's author (the merge request's author in GitLab, else the change record's owner)."""

from __future__ import annotations

import argparse
import re

from hie_notify import acks, output, timetext
from hie_notify.errors import InputError
from hie_notify.ledger import Entry, idempotency_key
from hie_notify.options import Options
from hie_notify.switches import in_gitlab_ci

MAX_REASON = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resolve",
        action="store_true",
        help="record that the open objections were resolved (needs --reason)",
    )
    parser.add_argument("--reason", metavar="TEXT", help="with --resolve: how it was resolved")
    parser.add_argument(
        "--audience",
        metavar="ID",
        help="with --resolve: only this audience's objections (like customer:EoE)",
    )
    parser.add_argument(
        "--portal",
        metavar="CUSTOMER",
        help="print the customer's portal link (needs HIE_ACK_KEY and HIE_PUBLIC_URL); "
        "a new HIE_ACK_KEY ends every link given before",
    )
    parser.add_argument(
        "--by",
        metavar="NAME",
        help="with --resolve outside GitLab CI: who resolved it (in CI: GITLAB_USER_LOGIN)",
    )


def run(args: argparse.Namespace, options: Options) -> int:
    from hie_notify.change import load_change
    from hie_notify.context import load_policy_for, require_change
    from hie_notify.ledger import open_ledger
    from hie_notify.masking import Masker
    from hie_notify.register.store import register_of

    if args.portal is not None:
        return _portal(args.portal, options)
    reason = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", args.reason or "").split())
    if args.resolve and not reason:
        raise InputError("--resolve: give --reason TEXT, how the objection was resolved")
    if not args.resolve and (args.reason or args.audience or args.by):
        raise InputError("--reason, --audience and --by: only with --resolve")
    if len(reason) > MAX_REASON:
        raise InputError(f"--reason: expected at most {MAX_REASON} characters")
    policy = load_policy_for(options).policy
    change = require_change(load_change(options.change, policy) if options.change else None)
    ledger = open_ledger(
        options.ledger, options.env, signed=policy.ledger.signed, must_exist=not args.resolve
    )
    mask = Masker.from_env(options.env)
    zone = policy.calendar.time_zone
    now = options.clock()
    entries = ledger.read(change.id)
    state = acks.by_audience(entries)
    lines = [f"{change.id}: acknowledgements"]
    recorded: list[Entry] = []
    if args.resolve:
        by = _resolver(args, options)
        author = _author(options, change.owner)
        if author and by.casefold() == author.casefold():
            raise InputError(
                f"--resolve: {by} is the change's author; an objection is resolved by someone "
                "else (the objection stands, and the gate still blocks)"
            )
        if not author and in_gitlab_ci(options.env):
            raise InputError(
                "--resolve: the change's author cannot be told (set HIE_GITLAB_TOKEN so the "
                "merge request's author can be read, or give the change record an owner); "
                "nothing was recorded"
            )
        open_ones = {
            aid: s
            for aid, s in state.items()
            if s.objections and (args.audience is None or aid == args.audience)
        }
        if not open_ones:
            raise InputError(
                "--resolve: no open objection"
                + (f" from {args.audience}" if args.audience else "")
                + " to resolve"
            )
        for aid, s in open_ones.items():
            entry = Entry(
                change_id=change.id,
                stage=acks.ACK,
                audience=aid,
                channel="cli",
                recipient=mask(by),
                fingerprint=next(
                    (e.fingerprint for e in reversed(entries) if e.stage == "announce"), ""
                ),
                change_type=change.type,
                service_impacting=False,
                resources=(),
                delivered_at=now,
                message_id="",
                idempotency_key=idempotency_key(
                    change.id, acks.RESOLVED, aid, s.objections[-1].at.isoformat(), by
                ),
                extra={"decision": acks.RESOLVED, "reason": mask(reason), "by": mask(by)},
            )
            if not options.dry_run:
                recorded.extend(ledger.record([entry]))
        entries = [*entries, *recorded]
        state = acks.by_audience(entries)
        register = register_of(options, policy)
        record = register.get(change.id) if register is not None else None
        if register is not None and record is not None and recorded:
            register.put(record, recorded, now)
    for aid, s in sorted(state.items()):
        for a in s.acknowledged:
            lines.append(f"  {aid}: acknowledged by {a.contact} {timetext.moment(a.at, zone)}")
        for o in s.objections:
            lines.append(
                f"  {aid}: OPEN objection by {o.contact} {timetext.moment(o.at, zone)}: {o.reason}"
            )
        for r in s.resolved:
            what = "resolved" if r.decision == acks.RESOLVED else "objection (resolved)"
            who = f" by {r.by}" if r.by else f" by {r.contact}"
            lines.append(f"  {aid}: {what}{who} {timetext.moment(r.at, zone)}: {r.reason}")
    if len(lines) == 1:
        lines.append("  no answers yet")
    if recorded:
        lines.append(f"  recorded {len(recorded)} resolution(s) in {ledger.description}")
    data = {
        "change_id": change.id,
        "acknowledgements": [s.to_json() for _, s in sorted(state.items())],
        "recorded": [e.audience for e in recorded],
    }
    output.emit(options, data, "\n".join(lines))
    return 0


def _resolver(args: argparse.Namespace, options: Options) -> str:
    login = (options.env.get("GITLAB_USER_LOGIN") or "").strip()
    given = (args.by or "").strip()
    if in_gitlab_ci(options.env):
        if not login:
            raise InputError("--resolve: GITLAB_USER_LOGIN is not set: who resolves is unknown")
        if given and given != login:
            raise InputError(
                f"--by: in GitLab CI the person is the job's user ({login}), not {given!r}"
            )
        return login
    if not (given or login):
        raise InputError("--resolve: give --by NAME, who resolved the objection")
    return given or login


def _author(options: Options, owner: str | None) -> str:
    """The merge request's author when GitLab can say, else the change record's owner."""
    from hie_notify.stagerun import gitlab_configured

    if gitlab_configured(options):
        from hie_notify.gitlab_api import NoteTarget, other_approvers

        where = NoteTarget.from_env(
            options.env, "the change's author", allow_issue=False, settings=options.settings
        )
        _, author = other_approvers(where)
        return author
    return (owner or "").strip()


def _portal(customer: str, options: Options) -> int:
    from hie_notify.context import load_policy_for

    policy = load_policy_for(options).policy
    if customer not in policy.customers:
        raise InputError(
            f"--portal: {customer!r} is not a customer in the policy (expected one of "
            f"{', '.join(policy.customers) or 'none'})"
        )
    links = acks.AckLinks.from_env(options.env)
    if links is None:
        raise InputError(
            "--portal: set HIE_ACK_KEY (the signing key receive uses) and HIE_PUBLIC_URL "
            "(receive's address) to make a portal link"
        )
    url = links.portal_url(customer)
    output.emit(options, {"customer": customer, "portal_url": url}, url)
    return 0
